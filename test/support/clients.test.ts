// The protocol-exact test clients, checked against the reference's golden messages (section 8).
// Whole publishes with them, through the real hub, are the end-to-end tests (test/e2e/dispatch*).
import { describe, expect } from 'vitest';
import { test } from '@perry-hub/testkit';
import { deriveWsUrl, parseServerMessage, sniffDownload } from './perry-cli.js';
import * as wire from './rust-wire.js';

const J = '3f2c8a9e-5b1d-4c7e-9a2f-1e6d0b7c4a58';

describe('wire shapes against the golden messages (reference 8.2)', () => {
  test('hellos in declaration order; Windows has no max_concurrent', () => {
    const f = { name: 'kamatera-fra', secret: 's3cr3t', perryVersion: '0.5.14', maxConcurrent: 2 };
    expect(wire.hello('linux', f)).toBe(
      '{"type":"worker_hello","capabilities":["linux","android","windows","ios","macos","tvos"],"name":"kamatera-fra","secret":"s3cr3t","perry_version":"0.5.14","max_concurrent":2}',
    );
    expect(wire.hello('macos', { ...f, name: 'oakhost-tart' })).toBe(
      '{"type":"worker_hello","capabilities":["macos-sign","ios-sign"],"name":"oakhost-tart","secret":"s3cr3t","perry_version":"0.5.14","max_concurrent":2}',
    );
    expect(wire.hello('windows', { ...f, name: 'perry-sign-win' })).toBe(
      '{"type":"worker_hello","capabilities":["windows-sign"],"name":"perry-sign-win","secret":"s3cr3t","perry_version":"0.5.14"}',
    );
    expect(wire.hello('linux', { ...f, secret: undefined, perryVersion: undefined })).toBe(
      '{"type":"worker_hello","capabilities":["linux","android","windows","ios","macos","tvos"],"name":"kamatera-fra","max_concurrent":2}',
    );
  });

  test('json!-built messages with sorted keys and f64 durations', () => {
    expect(wire.stage(J, 'compiling', 'Compiling TypeScript to native')).toBe(
      `{"job_id":"${J}","message":"Compiling TypeScript to native","stage":"compiling","type":"stage"}`,
    );
    expect(wire.progress(J, 'compiling', 100, null)).toBe(
      `{"job_id":"${J}","message":null,"percent":100,"stage":"compiling","type":"progress"}`,
    );
    expect(wire.log(J, 'compiling', 'warning: unused variable `x`', 'stderr')).toBe(
      `{"job_id":"${J}","line":"warning: unused variable \`x\`","stage":"compiling","stream":"stderr","type":"log"}`,
    );
    expect(wire.published(J, 'android', 'Uploaded to Google Play (internal track)', null)).toBe(
      `{"job_id":"${J}","message":"Uploaded to Google Play (internal track)","platform":"android","type":"published","url":null}`,
    );
    const ipa = {
      name: `MyApp-${J}.ipa`,
      sha256: '2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae',
      size: 18300412,
    };
    expect(wire.complete('linux', J, true, 83.412, 'ios', [ipa])).toBe(
      `{"artifacts":[{"name":"MyApp-${J}.ipa","sha256":"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae","size":18300412}],"duration_secs":83.412,"job_id":"${J}","needs_finishing":"ios","success":true,"type":"complete"}`,
    );
    expect(wire.complete('linux', J, true, 61.9, null, [ipa])).toContain('"needs_finishing":null,');
    expect(wire.complete('macos', J, true, 41.07, null, [ipa])).not.toContain('needs_finishing');
    expect(wire.complete('windows', J, false, 12.5, null, [ipa])).toBe(
      `{"artifacts":[],"duration_secs":12.5,"job_id":"${J}","success":false,"type":"complete"}`,
    );
    expect(wire.complete('macos', J, false, 12, null, [])).toContain('"duration_secs":12.0,');
    expect(wire.error('linux', J, 'Compiler exited with status 1')).toBe(
      `{"code":"INTERNAL_ERROR","job_id":"${J}","message":"Compiler exited with status 1","type":"error"}`,
    );
    expect(wire.error('windows', J, 'Build cancelled')).toBe(
      `{"code":"INTERNAL_ERROR","job_id":"${J}","message":"Build cancelled","stage":null,"type":"error"}`,
    );
    expect(wire.error('windows', undefined, 'Invalid manifest: missing field `entry`')).toBe(
      '{"type":"error","code":"INTERNAL_ERROR","message":"Invalid manifest: missing field `entry`","stage":null}',
    );
    expect(wire.updateResult(true, '0.5.13', '0.5.14')).toBe(
      '{"type":"update_result","success":true,"old_version":"0.5.13","new_version":"0.5.14"}',
    );
    expect(wire.updateResult(false, '0.5.13', '', 'Update already in progress')).toBe(
      '{"type":"update_result","success":false,"old_version":"0.5.13","new_version":"","error":"Update already in progress"}',
    );
  });

  test('upload targets and needs_finishing (reference 2.8 #5, 3.2)', () => {
    expect(['windows', 'ios', 'macos', 'tvos', 'linux', 'android'].map((t) => wire.uploadTarget('linux', [t]))).toEqual(
      ['windows-precompiled', 'ios-precompiled', 'macos-precompiled', 'tvos', 'linux', 'android'],
    );
    expect(['windows', 'ios', 'macos', 'tvos', 'linux'].map((t) => wire.needsFinishing('linux', [t]))).toEqual([
      'windows',
      'ios',
      'macos',
      null,
      null,
    ]);
    expect(wire.uploadTarget('macos', ['ios-sign'])).toBe('ios-sign');
    expect(wire.uploadTarget('windows', ['windows-sign'])).toBe('windows');
    expect(wire.needsFinishing('macos', ['macos'])).toBeNull();
  });

  test('the CLI side: URL derivation, skipped messages, download sniffing', () => {
    expect(deriveWsUrl('https://hub.perryts.com', '/ws')).toBe('wss://hub.perryts.com/ws');
    expect(deriveWsUrl('http://localhost:3456', '/ws')).toBe('ws://localhost:3456/ws');
    expect(deriveWsUrl('http://localhost:3456/', '/ws')).toBe('ws://localhost:3456//ws');
    expect(deriveWsUrl('http://x', 'wss://elsewhere/ws')).toBe('wss://elsewhere/ws');
    expect(parseServerMessage('{"type":"job_created","job_id":"j","position":0,"estimated_wait_secs":0}')).toBeTruthy();
    expect(parseServerMessage('{"type":"job_created","job_id":"j"}')).toBeUndefined(); // no position
    expect(parseServerMessage('{"type":"error","code":"X"}')).toBeUndefined(); // no message
    expect(parseServerMessage('{"type":"progress","stage":"s","percent":300}')).toBeUndefined(); // not a u8
    expect(parseServerMessage('{"type":"build_complete","job_id":"j"}')).toBeUndefined();
    expect(parseServerMessage('not json')).toBeUndefined();
    const bytes = Buffer.from([0, 1, 2, 250, 255, 10]);
    expect(sniffDownload(Buffer.from(bytes.toString('base64')))).toEqual(bytes);
    expect(sniffDownload(Buffer.from(`${bytes.toString('base64')}\r\n`))).toEqual(bytes);
    expect(sniffDownload(bytes)).toEqual(bytes);
    expect(sniffDownload(Buffer.from('abc'))).toEqual(Buffer.from('abc')); // too short to sniff
    expect(sniffDownload(Buffer.from('abcde'))).toEqual(Buffer.from('abcde')); // not valid base64: raw
  });
});

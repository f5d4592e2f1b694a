// The protocol-exact test clients, checked two ways: their bytes against the reference's golden
// messages (section 8), and a whole publish through a real worker-gateway with a fake ingest and
// scheduler (fake-hub.ts) standing in until the real routes exist.
import { describe, expect } from 'vitest';
import { pino } from 'pino';
import { test, connectTestNats, testNatsCredentialsDir } from '@perry-hub/testkit';
import { launchService, loadConfig } from '@perry-hub/runtime';
import { workerGateway } from '@perry-hub/worker-gateway';
import { startFakeHub } from './fake-hub.js';
import { deriveWsUrl, parseServerMessage, perryPublish, sniffDownload } from './perry-cli.js';
import { expectedArtifact } from './rust-worker-jobs.js';
import * as wire from './rust-wire.js';
import { WorkerHistory, linuxWorker, macosWorker, windowsWorker, type SimulatedWorker } from './rust-workers.js';

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

describe('a publish through the worker-gateway', () => {
  const MANIFEST = {
    app_name: 'MyApp',
    bundle_id: 'com.example.myapp',
    version: '42',
    short_version: '1.3.0',
    entry: 'src/main.ts',
    icon: null,
    category: null,
    minimum_os_version: null,
    entitlements: null,
  };
  const CREDENTIALS = {
    apple_team_id: null,
    apple_signing_identity: null,
    apple_key_id: null,
    apple_issuer_id: null,
    apple_p8_key: null,
  };
  const TARBALL = Buffer.from('H4sI pretend this is a gzip tarball \u0000\u00ff', 'latin1');

  async function setup(natsUrl: string, prefix: string) {
    const nc = await connectTestNats(natsUrl);
    const env = {
      PERRY_HUB_NATS_URL: natsUrl,
      PERRY_HUB_NATS_CREDENTIALS_DIR: testNatsCredentialsDir(),
      PERRY_HUB_SUBJECT_PREFIX: prefix,
      PERRY_HUB_WS_PORT: '0',
      PERRY_HUB_WS_HOST: '127.0.0.1',
      PERRY_HUB_WORKER_SECRET: 's3cr3t',
    };
    const gateway = await launchService(
      workerGateway,
      loadConfig(workerGateway.config, env),
      pino({ level: 'silent' }),
    );
    const hub = await startFakeHub(nc, prefix);
    const detach = (gateway.info['attach'] as (s: typeof hub.server) => () => void)(hub.server);
    const wsUrl = hub.url.replace('http://', 'ws://') + '/ws';
    const history = new WorkerHistory();
    const workers: SimulatedWorker[] = [];
    const options = { url: wsUrl, secret: 's3cr3t', perryVersion: '0.5.14', reconnectDelayMs: 200, history };
    return {
      hub,
      history,
      workers,
      options,
      gatewayUrl: `ws://127.0.0.1:${gateway.info['wsPort'] as number}`,
      add: async (w: SimulatedWorker) => (workers.push(w), await w.connected(), w),
      close: async () => {
        for (const w of workers) await w.stop();
        detach();
        await hub.close();
        await gateway.stop();
        await nc.close();
      },
    };
  }

  test('iOS: Linux cross-compiles, macOS signs, the CLI downloads the signed artifact', async ({ natsUrl, prefix }) => {
    const s = await setup(natsUrl, prefix);
    try {
      const linux = await s.add(linuxWorker({ ...s.options, name: 'kamatera-fra' }));
      const mac = await s.add(macosWorker({ ...s.options, name: 'oakhost-tart', url: s.gatewayUrl }));
      const result = await perryPublish({
        server: s.hub.url,
        manifest: { ...MANIFEST, targets: ['ios'] },
        credentials: CREDENTIALS,
        tarball: TARBALL,
        licenseKey: 'FREE-1A2B-3C4D-5E6F',
        timeoutMs: 20_000,
      });
      expect(result.reason).toBe('Ready');
      expect(result.exitCode).toBe(0);
      const precompiled = expectedArtifact('linux', 'ios-precompiled', TARBALL);
      expect(result.artifact?.bytes).toEqual(expectedArtifact('macos', 'ios-sign', precompiled));
      expect(result.artifact?.name).toBe(`MyApp-${result.jobId}.ipa`);
      expect(result.transcript[0]).toBe(
        `{"type":"job_created","job_id":"${result.jobId}","position":0,"estimated_wait_secs":0}`,
      );
      expect(result.transcript).toContain(
        `{"type":"stage","job_id":"${result.jobId}","stage":"signing","message":"Routing to platform worker for signing and packaging..."}`,
      );
      expect(result.transcript.at(-1)).toMatch(/^\{"artifacts":\[\{"name":.*"success":true,"type":"complete"\}$/);
      expect(result.transcript.filter((t) => t.includes('"artifact_ready"'))).toHaveLength(2);

      const job = s.hub.jobs.get(result.jobId!)!;
      expect(job.partOrder).toEqual(['manifest', 'credentials', 'tarball_b64', 'license_key']);
      expect(job.uploads.map((u) => [u.headers['x-artifact-target'], u.headers['content-type']])).toEqual([
        ['ios-precompiled', 'text/plain'],
        ['ios-sign', 'text/plain'],
      ]);
      expect(linux.sent[0]).toBe(
        wire.hello('linux', { name: 'kamatera-fra', secret: 's3cr3t', perryVersion: '0.5.14', maxConcurrent: 2 }),
      );
      expect(s.history.started.map((h) => [h.worker, h.targets])).toEqual([
        ['kamatera-fra', ['ios']],
        ['oakhost-tart', ['ios-sign']],
      ]);
      expect(s.history.completes.map((c) => [c.worker, c.success, c.needsFinishing])).toEqual([
        ['kamatera-fra', true, 'ios'],
        ['oakhost-tart', true, null],
      ]);
      expect(mac.received[0]).toMatch(/^\{"type":"job_assign","job_id":/);
    } finally {
      await s.close();
    }
  });

  test('Windows: the precompiled bundle is held back, the Windows worker finishes', async ({ natsUrl, prefix }) => {
    const s = await setup(natsUrl, prefix);
    try {
      await s.add(linuxWorker({ ...s.options, name: 'linux-1' }));
      const win = await s.add(windowsWorker({ ...s.options, name: 'perry-sign-win' }));
      const result = await perryPublish({
        server: s.hub.url,
        manifest: { ...MANIFEST, targets: ['windows'] },
        credentials: CREDENTIALS,
        tarball: TARBALL,
        apiToken: 'api-token-1',
        timeoutMs: 20_000,
      });
      expect(result.exitCode).toBe(0);
      expect(result.transcript.filter((t) => t.includes('"artifact_ready"'))).toHaveLength(1);
      expect(result.artifact).toMatchObject({ name: 'MyApp-Setup.exe' });
      expect(result.artifact?.bytes).toEqual(
        expectedArtifact('windows', 'windows', expectedArtifact('linux', 'windows-precompiled', TARBALL)),
      );
      const job = s.hub.jobs.get(result.jobId!)!;
      expect(job.partOrder).toEqual(['manifest', 'credentials', 'tarball_b64']);
      expect(job.headers.authorization).toBe('Bearer api-token-1');
      expect(win.sent[0]).not.toContain('max_concurrent');
    } finally {
      await s.close();
    }
  });

  test('a failing build: the CLI stops at the error; a mid-job disconnect is a reconnect', async ({
    natsUrl,
    prefix,
  }) => {
    const s = await setup(natsUrl, prefix);
    try {
      const linux = await s.add(
        linuxWorker({
          ...s.options,
          name: 'flaky',
          script: () => ({ fail: 'Compiler exited with status 1', durationMs: 50 }),
        }),
      );
      const result = await perryPublish({
        server: s.hub.url,
        manifest: { ...MANIFEST, targets: ['linux'] },
        credentials: CREDENTIALS,
        tarball: TARBALL,
        licenseKey: 'K',
        timeoutMs: 20_000,
      });
      expect(result.outcome).toBe('error');
      expect(result.reason).toBe('Build error [INTERNAL_ERROR]: Compiler exited with status 1');
      expect(s.history.completes).toEqual([expect.objectContaining({ worker: 'flaky', success: false })]);
      linux.dropConnection();
      await linux.connected();
      await expect.poll(() => linux.connections).toBe(2);
    } finally {
      await s.close();
    }
  });
});

// The worker's configuration and command line: defaults, per-target commands from variables and
// the config file, and every problem reported at once before anything connects.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_COMPILE, defaultName, loadWorkerConfig, main, parseLine, targetConfig, wire } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'perry-worker-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture() {
  let text = '';
  const out = new Writable({ write: (chunk, _enc, done) => ((text += String(chunk)), done()) });
  return { out, text: () => text };
}

describe('worker configuration', () => {
  it('defaults: the Rust workers’ variable names, one linux slot, the perry compiler', () => {
    const c = loadWorkerConfig({ PERRY_WORKER_NAME: 'w1' });
    expect(c).toMatchObject({
      hubUrl: 'ws://localhost:3457',
      secret: undefined,
      name: 'w1',
      capabilities: ['linux'],
      maxConcurrent: 1,
      perryBinary: 'perry',
      jobTimeoutSecs: 3600,
    });
    expect(targetConfig(c, 'linux')).toEqual({
      compile: DEFAULT_COMPILE,
      package: undefined,
      artifacts: ['**'],
      needsFinishing: null,
    });
    expect(defaultName('build box #1.example')).toBe('build-box--1.example');
    expect(defaultName('---')).toBe('perry-worker');
  });

  it('per target: variables over the config file over the defaults', () => {
    const file = join(dir, 'worker.json');
    writeFileSync(
      file,
      JSON.stringify({
        capabilities: ['linux', 'android', 'ios'],
        max_concurrent: 3,
        command: 'make',
        artifacts: ['*.bin'],
        targets: { android: { command: 'gradle', artifacts: ['**/*.apk'] }, ios: { needs_finishing: 'ios' } },
      }),
    );
    const c = loadWorkerConfig(
      { PERRY_WORKER_CONFIG: file, PERRY_WORKER_COMMAND_ANDROID: 'gradle assemble', PERRY_MAX_CONCURRENT_BUILDS: '2' },
      undefined,
    );
    expect(c.maxConcurrent).toBe(2);
    expect(targetConfig(c, 'linux')).toMatchObject({ compile: 'make', artifacts: ['*.bin'] });
    expect(targetConfig(c, 'android')).toMatchObject({ compile: 'gradle assemble', artifacts: ['**/*.apk'] });
    expect(targetConfig(c, 'ios')).toMatchObject({ compile: 'make', needsFinishing: 'ios' });
    expect(loadWorkerConfig({ PERRY_WORKER_WRAPPER: '["firejail","--quiet"]' }).wrapper).toEqual([
      'firejail',
      '--quiet',
    ]);
    expect(loadWorkerConfig({ PERRY_WORKER_WRAPPER: 'runuser -u builder --' }).wrapper).toEqual([
      'runuser',
      '-u',
      'builder',
      '--',
    ]);
  });

  it('refuses a bad setup listing every problem, with exit status 2', async () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ capabilities: ['linux'], colour: 'blue', targets: { linux: { cmd: 'x' } } }));
    const { out, text } = capture();
    const code = await main(
      ['--config', file],
      {
        PERRY_HUB_URL: 'http://hub:3456',
        PERRY_WORKER_NAME: 'bad name',
        PERRY_WORKER_CAPABILITIES: 'linux,playstation',
        PERRY_MAX_CONCURRENT_BUILDS: 'many',
      },
      out,
    );
    expect(code).toBe(2);
    const t = text();
    for (const problem of [
      'PERRY_HUB_URL=http://hub:3456: expected a ws:// or wss:// URL',
      'PERRY_WORKER_NAME=bad name',
      'capability "playstation" is not a target the hub knows',
      'PERRY_MAX_CONCURRENT_BUILDS=many: expected a whole number from 1 to 64',
      'unknown setting "colour"',
    ]) {
      expect(t).toContain(problem);
    }
    // A broken config file is a problem too, not a crash.
    const broken = capture();
    expect(await main(['--config', join(dir, 'missing.json')], {}, broken.out)).toBe(2);
    expect(broken.text()).toContain('missing.json: ENOENT');
    const unwritable = capture();
    writeFileSync(join(dir, 'a-file'), '');
    const workDir = join(dir, 'a-file', 'jobs');
    expect(await main([], { PERRY_WORKER_WORK_DIR: workDir }, unwritable.out)).toBe(2);
    expect(unwritable.text()).toContain(`the work directory ${workDir} is not writable`);
  });

  it('--help lists every option and variable; an unknown option is refused', async () => {
    const help = capture();
    expect(await main(['--help'], {}, help.out)).toBe(0);
    expect(help.text()).toContain('--once');
    expect(help.text()).toContain('PERRY_HUB_WORKER_SECRET');
    const bad = capture();
    expect(await main(['--bogus'], {}, bad.out)).toBe(2);
    expect(bad.text()).toContain("Unknown option '--bogus'");
  });
});

describe('command output', () => {
  it('::stage and ::progress lines are reports; everything else is a log line', () => {
    expect(parseLine('::stage compiling Compiling for linux', 'stdout')).toEqual({
      kind: 'stage',
      stage: 'compiling',
      message: 'Compiling for linux',
    });
    expect(parseLine('::stage packaging', 'stderr')).toEqual({ kind: 'stage', stage: 'packaging', message: '' });
    expect(parseLine('::progress 40', 'stdout')).toEqual({ kind: 'progress', percent: 40, message: null });
    expect(parseLine('::progress 100 done', 'stdout')).toEqual({ kind: 'progress', percent: 100, message: 'done' });
    // Not a stage the CLI knows, not a percent: plain lines.
    expect(parseLine('::stage dancing', 'stdout')).toEqual({ kind: 'log', line: '::stage dancing', stream: 'stdout' });
    expect(parseLine('::progress 300', 'stderr')).toEqual({ kind: 'log', line: '::progress 300', stream: 'stderr' });
    expect((parseLine('x'.repeat(10_000), 'stdout') as { line: string }).line.length).toBe(4_001);
  });

  it('frames in the Linux worker’s shapes', () => {
    const j = '3f2c8a9e-5b1d-4c7e-9a2f-1e6d0b7c4a58';
    expect(wire.complete(j, false, 12, null, [])).toBe(
      `{"artifacts":[],"duration_secs":12.0,"job_id":"${j}","success":false,"type":"complete"}`,
    );
    expect(wire.updateResult(false, '0.5.13', '', 'Builds are running; update declined')).toBe(
      '{"type":"update_result","success":false,"old_version":"0.5.13","new_version":"","error":"Builds are running; update declined"}',
    );
    expect(wire.parseHubFrame('{"type":"proceed_distribute","job_id":"x"}').type).toBe('other');
    expect(wire.parseHubFrame('{"type":"cancel","job_id":"x"}')).toEqual({ type: 'cancel', jobId: 'x' });
  });
});

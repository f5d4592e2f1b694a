// The reference worker (apps/worker), unsimulated, against the whole hub with the CLI emulation:
// a build whose command is the project's own shell script (stages, progress and logs in order,
// two artifacts with matching SHA-256), the worker's frames byte for byte as the Linux Rust
// worker writes them, a failing command, a timeout, a cancel that leaves no process behind, and
// project tarballs that try to get out of the job directory.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect } from 'vitest';
import { pino } from 'pino';
import { test } from '@perry-hub/testkit';
import { loadWorkerConfig, startWorker, type Worker } from '@perry-hub/worker';
import { ROOT, ensureBuilt } from '../support/hub-process.js';
import { sniffDownload } from '../support/perry-cli.js';
import * as rust from '../support/rust-wire.js';
import { craftTarGz, type CraftEntry } from '../support/tar-craft.js';
import { ADMIN_SECRET, CREDENTIALS, MANIFEST, WORKER_SECRET } from '../support/test-hub.js';
import { until, withHub, type Scenario } from './dispatch-kit.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const KILL_GRACE_MS = 1_500;
const JOB_TIMEOUT_SECS = 4;

interface Running {
  worker: Worker;
  workDir: string;
  /** Process group ids of the build commands, per job. */
  groups: Map<string, number[]>;
}

async function withWorker(s: Scenario, body: (w: Running) => Promise<void>, env: Record<string, string> = {}) {
  const workDir = mkdtempSync(join(tmpdir(), 'perry-worker-e2e-'));
  chmodSync(workDir, 0o711); // a build run as another user passes through to its job directory
  const groups = new Map<string, number[]>();
  const config = loadWorkerConfig({
    PERRY_HUB_URL: s.hub.workerUrl,
    PERRY_HUB_WORKER_SECRET: WORKER_SECRET,
    PERRY_WORKER_NAME: 'ts-worker',
    PERRY_WORKER_WORK_DIR: join(workDir, 'jobs'),
    PERRY_WORKER_COMMAND: 'sh ./build.sh',
    PERRY_BUILD_PERRY_BINARY: join(workDir, 'no-perry-here'),
    PERRY_WORKER_KILL_GRACE_MS: String(KILL_GRACE_MS),
    PERRY_WORKER_JOB_TIMEOUT_SECS: String(JOB_TIMEOUT_SECS),
    PERRY_WORKER_MAX_EXTRACTED_BYTES: String(1024 * 1024),
    PERRY_WORKER_RECONNECT_MIN_MS: '100',
    PERRY_WORKER_RECONNECT_MAX_MS: '500',
    ...env,
  });
  const worker = await startWorker({
    config,
    log: pino({ level: process.env['TEST_LOG'] ?? 'silent' }),
    onCommandStart: (jobId, pid) => groups.set(jobId, [...(groups.get(jobId) ?? []), pid]),
  });
  try {
    await worker.connected();
    await until('the hub to count the worker', async () => (await s.hubStatus()).connected_workers === 1);
    await body({ worker, workDir, groups });
  } finally {
    await worker.stop();
    rmSync(workDir, { recursive: true, force: true });
  }
}

let projects = 0;
/** A project whose build.sh is the build; every one different (identical submissions are one build). */
const project = (script: string, extra: CraftEntry[] = []) =>
  craftTarGz([
    { name: 'build.sh', data: script, mode: 0o755 },
    { name: 'src/', type: '5' },
    { name: 'src/main.ts', data: `console.log('project ${++projects}');\n` },
    ...extra,
  ]);

/** Process state from /proc: a zombie has ended (only its parent, or init, has yet to reap it). */
function procState(pid: string | number): { state: string; pgrp: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, pgrp: Number(fields[2]) };
  } catch {
    return undefined;
  }
}
const alive = (pid: number) => {
  const st = procState(pid);
  return st !== undefined && st.state !== 'Z';
};
/** Any process of the group still running. */
const groupAlive = (pgid: number) =>
  readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .some((d) => {
      const st = procState(d);
      return st !== undefined && st.pgrp === pgid && st.state !== 'Z';
    });

type Msg = Record<string, unknown>;

describe('the reference worker end to end', () => {
  test('a scripted build: every line in order, two artifacts with matching SHA-256, frames as the Linux worker writes them; a failing command; a timeout', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      await withWorker(s, async ({ worker, workDir, groups }) => {
        const apiToken = await s.hub.account('pro');
        const script = [
          'echo "::stage compiling Compiling $PERRY_APP_NAME for $PERRY_TARGET"',
          'echo "out 1: entry $PERRY_ENTRY, build type $PERRY_BUILD_TYPE"',
          'sleep 0.2',
          'echo "err 2: a warning" >&2',
          'sleep 0.2',
          'echo "::progress 50 halfway"',
          'echo "out 3: credentials ${PERRY_CREDENTIALS_FILE:-none}, secret ${PERRY_HUB_WORKER_SECRET:-withheld}"',
          'cp "$PERRY_ENTRY" "$PERRY_OUTPUT_DIR/main.ts.txt"',
          'printf \'bin\\000\\001\\377%s\' "$PERRY_JOB_ID" > "$PERRY_OUTPUT_DIR/$PERRY_APP_NAME.bin"',
          'echo "::stage packaging Packaging"',
          'sleep 0.2',
          'echo "err 4: packaged" >&2',
        ].join('\n');
        const input = project(script);
        const cli = await s.publish(['linux'], { apiToken, tarball: input }).result;
        expect(cli.reason).toBe('Ready');
        const jobId = cli.jobId!;
        const progress = cli.messages
          .filter((m) => ['stage', 'progress', 'log'].includes(m.type))
          .map((m) => {
            const x = m as unknown as Msg;
            return m.type === 'stage'
              ? `stage ${String(x['stage'])}: ${String(x['message'])}`
              : m.type === 'progress'
                ? `progress ${String(x['stage'])} ${String(x['percent'])} ${String(x['message'])}`
                : `log ${String(x['stage'])} ${String(x['stream'])}: ${String(x['line'])}`;
          });
        expect(progress).toEqual([
          'stage extracting: Downloading project tarball',
          expect.stringMatching(/^stage extracting: Unpacking project \(\d+ bytes, raw\)$/),
          'progress extracting 100 3 entries, 0 bytes'.replace(
            '0 bytes',
            `${script.length + `console.log('project ${projects}');\n`.length} bytes`,
          ),
          'stage compiling: Building linux',
          'stage compiling: Compiling MyApp for linux',
          'log compiling stdout: out 1: entry src/main.ts, build type app',
          'log compiling stderr: err 2: a warning',
          'progress compiling 50 halfway',
          'log compiling stdout: out 3: credentials none, secret withheld',
          'stage packaging: Packaging',
          'log packaging stderr: err 4: packaged',
          'progress packaging 100 null',
          'stage uploading: Uploading 2 artifacts',
          'progress uploading 100 null',
        ]);
        // Both artifacts: the CLI downloaded the last one announced, we fetch the other.
        const ready = cli.messages.filter((m) => m.type === 'artifact_ready') as unknown as {
          artifact_name: string;
          sha256: string;
          download_url: string;
          artifact_size: number;
        }[];
        expect(ready.map((r) => r.artifact_name).sort()).toEqual(['MyApp.bin', 'main.ts.txt']);
        const expected: Record<string, Buffer> = {
          'MyApp.bin': Buffer.concat([Buffer.from([0x62, 0x69, 0x6e, 0, 1, 0xff]), Buffer.from(jobId)]),
          'main.ts.txt': Buffer.from(`console.log('project ${projects}');\n`),
        };
        expect(cli.artifact!.bytes).toEqual(expected[cli.artifact!.name]);
        expect(sha256(cli.artifact!.bytes)).toBe(ready.find((r) => r.artifact_name === cli.artifact!.name)!.sha256);
        const other = ready.find((r) => r.artifact_name !== cli.artifact!.name)!;
        const bytes = sniffDownload(Buffer.from(await (await fetch(other.download_url)).arrayBuffer()));
        expect(bytes).toEqual(expected[other.artifact_name]);
        expect(sha256(bytes)).toBe(other.sha256);
        expect(other.artifact_size).toBe(bytes.length);
        expect(worker.uploadMode.raw).toBe(true);

        // The worker's frames, byte for byte as the Linux worker's serde output (reference 8.2).
        expect(worker.sent[0]).toBe(
          '{"type":"worker_hello","capabilities":["linux"],"name":"ts-worker","secret":"s3cr3t","max_concurrent":1}',
        );
        const frames = worker.sent.slice(1).map((f) => [f, JSON.parse(f) as Msg] as const);
        expect(frames.length).toBeGreaterThan(10);
        for (const [f, m] of frames) {
          const j = String(m['job_id']);
          const again =
            m['type'] === 'stage'
              ? rust.stage(j, String(m['stage']), String(m['message']))
              : m['type'] === 'progress'
                ? rust.progress(j, String(m['stage']), Number(m['percent']), m['message'] as string | null)
                : m['type'] === 'log'
                  ? rust.log(j, String(m['stage']), String(m['line']), m['stream'] as 'stdout' | 'stderr')
                  : m['type'] === 'complete'
                    ? rust.complete(
                        'linux',
                        j,
                        m['success'] === true,
                        Number(m['duration_secs']),
                        (m['needs_finishing'] ?? null) as string | null,
                        m['artifacts'] as rust.ArtifactInfo[],
                      )
                    : rust.error('linux', j, String(m['message']));
          expect(f).toBe(again);
        }
        const complete = frames.at(-1)![1];
        expect(complete).toMatchObject({ type: 'complete', success: true, needs_finishing: null });
        expect(
          (complete['artifacts'] as { name: string; sha256: string }[]).map((a) => [a.name, a.sha256]).sort(),
        ).toEqual(ready.map((r) => [r.artifact_name, r.sha256]).sort());

        // A failing command: the CLI gets the failure with the command's last lines. This job has
        // signing credentials: they reach the command only as a 0600 file, gone with the job.
        const failing = await s.publish(['linux'], {
          apiToken,
          credentials: { ...CREDENTIALS, android_keystore_password: 'hunter2-canary' },
          tarball: project(
            [
              'echo "credentials $(stat -c %a "$PERRY_CREDENTIALS_FILE") $PERRY_CREDENTIALS_FILE"',
              'grep -c hunter2-canary "$PERRY_CREDENTIALS_FILE"',
              'echo "compiling src/main.ts"',
              'echo "src/main.ts:3:7: error: bad things" >&2',
              'exit 3',
            ].join('\n'),
          ),
        }).result;
        expect(failing.outcome).toBe('error');
        const credentialsFile = /credentials 600 (\S+)/.exec(failing.reason)?.[1];
        expect(credentialsFile).toBeDefined();
        expect(failing.reason).toBe(
          `Build error [INTERNAL_ERROR]: Build command for linux exited with status 3; last output:\ncredentials 600 ${credentialsFile}\n1\ncompiling src/main.ts\nsrc/main.ts:3:7: error: bad things`,
        );
        expect(existsSync(credentialsFile!)).toBe(false);
        await until('the failure recorded', async () => (await s.status(failing.jobId!)).status === 'failed');

        // Over PERRY_WORKER_JOB_TIMEOUT_SECS: stopped, reported failed, nothing left running.
        const slow = await s.publish(['linux'], {
          apiToken,
          tarball: project('echo started\nsleep 120 &\nwait'),
        }).result;
        expect(slow.outcome).toBe('error');
        expect(slow.reason).toBe(
          `Build error [INTERNAL_ERROR]: Build timed out after ${JOB_TIMEOUT_SECS} s (PERRY_WORKER_JOB_TIMEOUT_SECS)`,
        );
        await until('the timeout recorded', async () => (await s.status(slow.jobId!)).status === 'failed');
        for (const pgid of groups.get(slow.jobId!)!) expect(groupAlive(pgid)).toBe(false);
        // Every job directory is gone.
        await until('job directories removed', () => readdirSync(join(workDir, 'jobs')).length === 0);

        // update_perry, idle and without PERRY_WORKER_UPDATE_COMMAND: declined, and saying why.
        // Idle as the hub sees it: a slot freed by a finished build is published within half a second.
        await until('the worker idle in presence', async () => {
          const res = await fetch(`${s.hub.url}/api/v1/admin/workers`, {
            headers: { authorization: `Bearer ${ADMIN_SECRET}` },
          });
          const body = (await res.json()) as { workers: { busy: boolean }[] };
          return body.workers.length === 1 && !body.workers[0]!.busy;
        });
        const told = await fetch(`${s.hub.url}/api/v1/admin/update-perry`, {
          method: 'POST',
          headers: { authorization: `Bearer ${ADMIN_SECRET}`, 'content-type': 'application/json' },
          body: JSON.stringify({ expected_version: '9.9.9' }),
        });
        expect(((await told.json()) as { workers_notified: number }).workers_notified).toBe(1);
        expect(
          await until('the update answer', () => worker.sent.find((f) => f.includes('"type":"update_result"'))),
        ).toBe(
          '{"type":"update_result","success":false,"old_version":"","new_version":"","error":"This worker does not update Perry itself (PERRY_WORKER_UPDATE_COMMAND is not set)"}',
        );
      });
    });
  });

  test('cancel of a running build stops the command and its children within the grace period', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      await withWorker(s, async ({ worker, groups }) => {
        const apiToken = await s.hub.account('pro');
        // The leader and one child ignore SIGTERM: only the SIGKILL after the grace stops them.
        const script = [
          "trap '' TERM",
          'sleep 300 &',
          'echo "child $!"',
          "(trap 'exit 0' TERM; while :; do sleep 0.1; done) &",
          'echo "polite $!"',
          'echo "leader $$"',
          'while :; do sleep 0.1; done',
        ].join('\n');
        const run = s.publish(['linux'], { apiToken, tarball: project(script) });
        const jobId = await run.jobId;
        const watcher = await s.watch(jobId);
        await watcher.next('the leader line', (m) => String(m['line']).startsWith('leader '));
        const pids = watcher
          .parsed()
          .filter((m) => m['type'] === 'log')
          .map((m) => Number(String(m['line']).split(' ')[1]));
        expect(pids).toHaveLength(3);
        for (const pid of pids) expect(alive(pid)).toBe(true);
        const pgid = groups.get(jobId)![0]!;
        expect(groupAlive(pgid)).toBe(true);

        expect(await s.cancel(jobId, { apiToken })).toEqual({ status: 200, body: { job_id: jobId, cancelled: true } });
        const cancel = `{"type":"cancel","job_id":"${jobId}"}`;
        const told = await until(
          'the worker told to cancel',
          () => worker.received.find((r) => r.frame === cancel)?.at,
        );
        // Within the grace (the leader and `sleep` ignore SIGTERM, so they last all of it), plus scheduling slack.
        await until(
          'every process of the build gone',
          () => !groupAlive(pgid) && pids.every((p) => !alive(p)),
          KILL_GRACE_MS + 3_000,
        );
        console.log(
          `cancel: every process gone ${Date.now() - told} ms after the worker got the cancel (grace ${KILL_GRACE_MS} ms)`,
        );
        const result = await run.result;
        expect(result.reason).toBe('Build error [INTERNAL_ERROR]: Build cancelled');
        expect(worker.sent.filter((f) => f.includes('"type":"complete"'))).toEqual([
          expect.stringMatching(
            new RegExp(
              `^\\{"artifacts":\\[\\],"duration_secs":[0-9.]+,"job_id":"${jobId}","success":false,"type":"complete"\\}$`,
            ),
          ),
        ]);
        await until('the cancel recorded', async () => (await s.status(jobId)).status === 'cancelled');
      });
    });
  });

  test('a connection lost mid-build: the build goes on, and the worker claims the job back when it reconnects', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      // The worker stays away longer than the rest of the build takes.
      const env = { PERRY_WORKER_RECONNECT_MIN_MS: '3000', PERRY_WORKER_RECONNECT_MAX_MS: '3000' };
      await withWorker(
        s,
        async ({ worker, groups }) => {
          const apiToken = await s.hub.account('pro');
          const script =
            'echo "before the drop"\nsleep 1\necho "after the drop"\necho built-while-away > "$PERRY_OUTPUT_DIR/app.bin"';
          const run = s.publish(['linux'], { apiToken, tarball: project(script) });
          const jobId = await run.jobId;
          await until('the build to start', () => groups.get(jobId));
          worker.dropConnection();
          const result = await run.result;
          expect(result.reason).toBe('Ready');
          expect(result.artifact?.bytes.toString()).toBe('built-while-away\n');
          expect(groups.get(jobId)).toHaveLength(1); // built once
          expect(worker.connections).toBe(2);
          const lines = result.messages.filter((m) => m.type === 'log').map((m) => (m as unknown as Msg)['line']);
          expect(lines).toEqual(['before the drop', 'after the drop']);
          expect(result.messages.some((m) => m.type === 'queue_update')).toBe(true); // re-queued, then claimed back
          expect(worker.received.filter((r) => r.frame.includes('"type":"job_assign"'))).toHaveLength(1);
        },
        env,
      );
    });
  });

  test('perry-hub worker --once, as a process: one job, then exit 0; with a wrong secret: exit 3 and the reason', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    ensureBuilt();
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      const workDir = mkdtempSync(join(tmpdir(), 'perry-worker-once-'));
      const run = (extra: Record<string, string>) => {
        const child = spawn(process.execPath, [join(ROOT, 'libs', 'cli', 'dist', 'bin.js'), 'worker', '--once'], {
          env: {
            PATH: process.env['PATH'] ?? '',
            PERRY_HUB_URL: s.hub.workerUrl,
            PERRY_HUB_WORKER_SECRET: WORKER_SECRET,
            PERRY_WORKER_NAME: 'once',
            PERRY_WORKER_WORK_DIR: workDir,
            PERRY_WORKER_COMMAND: 'sh ./build.sh',
            PERRY_WORKER_PACKAGE_COMMAND: 'echo packaged > "$PERRY_OUTPUT_DIR/package.txt"',
            ...extra,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let output = '';
        child.stdout.on('data', (d: Buffer) => (output += d.toString()));
        child.stderr.on('data', (d: Buffer) => (output += d.toString()));
        const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
        return { child, exited, output: () => output };
      };
      try {
        const refused = run({ PERRY_HUB_WORKER_SECRET: 'not-the-secret' });
        expect(await refused.exited).toBe(3);
        expect(refused.output()).toContain(
          "perry-hub worker: the hub refused the worker secret: set PERRY_HUB_WORKER_SECRET to the hub's value",
        );

        const once = run({});
        await until('the worker to connect', async () => (await s.hubStatus()).connected_workers === 1);
        const apiToken = await s.hub.account('pro');
        // A plugin compiles only: the configured packaging command does not run.
        const cli = await s.publish(['linux'], {
          apiToken,
          manifest: { ...MANIFEST, targets: ['linux'], build_type: 'plugin' },
          tarball: project('echo "build type $PERRY_BUILD_TYPE"\necho "the one job" > "$PERRY_OUTPUT_DIR/once.txt"'),
        }).result;
        expect(cli.reason).toBe('Ready');
        expect(cli.artifact?.bytes.toString()).toBe('the one job\n');
        expect(cli.messages.filter((m) => m.type === 'artifact_ready')).toHaveLength(1);
        expect(
          cli.messages.some((m) => m.type === 'log' && (m as unknown as Msg)['line'] === 'build type plugin'),
        ).toBe(true);
        expect(cli.messages.some((m) => m.type === 'stage' && (m as unknown as Msg)['stage'] === 'packaging')).toBe(
          false,
        );
        expect(await once.exited).toBe(0);
        // Not a terminal: JSON lines for journald and collectors.
        expect(once.output()).toContain('"msg":"--once: the job is done; stopping"');
        await until('the hub to see it go', async () => (await s.hubStatus()).connected_workers === 0);
      } finally {
        rmSync(workDir, { recursive: true, force: true });
      }
    });
  });

  test.skipIf(process.getuid?.() !== 0)(
    'PERRY_WORKER_RUN_AS_USER: the build runs as that user, owns its job directory and credentials, sees nothing else',
    async ({ natsUrl, prefix, database }) => {
      await withHub({ natsUrl, prefix, database }, {}, async (s) => {
        await withWorker(
          s,
          async () => {
            const apiToken = await s.hub.account('pro');
            const script = [
              'echo "user $(id -un)"',
              'echo "credentials $(stat -c "%U %a" "$PERRY_CREDENTIALS_FILE")"',
              'ls "$(dirname "$PERRY_JOB_DIR")" > /dev/null 2>&1 && echo "work dir listed" || echo "work dir closed"',
              'id -un > "$PERRY_OUTPUT_DIR/who.txt"',
            ].join('\n');
            const cli = await s.publish(['linux'], {
              apiToken,
              credentials: { ...CREDENTIALS, android_keystore_password: 'hunter2-canary' },
              tarball: project(script),
            }).result;
            expect(cli.reason).toBe('Ready');
            const lines = cli.messages.filter((m) => m.type === 'log').map((m) => (m as unknown as Msg)['line']);
            expect(lines).toEqual(['user nobody', 'credentials nobody 600', 'work dir closed']);
            expect(cli.artifact?.bytes.toString()).toBe('nobody\n');
          },
          { PERRY_WORKER_RUN_AS_USER: 'nobody' },
        );
      });
    },
  );

  test('project tarballs that reach outside the job directory, a device file or a bomb are refused with a clear error', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      await withWorker(s, async ({ workDir }) => {
        const apiToken = await s.hub.account('pro');
        const jobs = join(workDir, 'jobs');
        const outside = join(workDir, `absolute-${process.pid}`);
        const cases: [CraftEntry[], string][] = [
          [[{ name: '../../escaped.txt', data: 'pwned' }], `entry "../../escaped.txt" has a '..' path component`],
          [[{ name: outside, data: 'pwned' }], `entry "${outside}" has an absolute path`],
          [
            [
              { name: 'up', type: '2', linkname: '../..' },
              { name: 'up/escaped.txt', data: 'pwned' },
            ],
            'entry "up" links outside the project directory ("../..")',
          ],
          [
            [{ name: 'dev/zero', type: '3', devmajor: 1, devminor: 5 }],
            'entry "dev/zero" is a CharacterDevice (only files, directories and links inside the project are allowed)',
          ],
          [
            [{ name: 'bomb.bin', size: 64 * 1024 * 1024 }],
            'the project unpacks to more than 1048576 bytes (PERRY_WORKER_MAX_EXTRACTED_BYTES)',
          ],
        ];
        for (const [entries, why] of cases) {
          const result = await s.publish(['linux'], { apiToken, tarball: project('echo never run', entries) }).result;
          expect(result.outcome).toBe('error');
          expect(result.reason).toBe(`Build error [INTERNAL_ERROR]: Refused the project tarball: ${why}`);
          expect(result.messages.some((m) => m.type === 'log')).toBe(false); // the command never ran
        }
        expect(existsSync(outside)).toBe(false);
        expect(existsSync(join(dirname(jobs), 'escaped.txt'))).toBe(false);
        expect(existsSync(join(jobs, 'escaped.txt'))).toBe(false);
        expect(readdirSync(workDir).sort()).toEqual(['jobs']);
        await until('job directories removed', () => readdirSync(jobs).length === 0);
      });
    });
  });
});

// Two-stage builds end to end (reference 3.2, 8.6): the Linux worker cross-compiles, the hub holds
// the `*-precompiled` intermediate, re-queues the job as `<platform>-sign`, and a sign worker
// finishes it from that intermediate.
import { createHash } from 'node:crypto';
import { describe, expect } from 'vitest';
import { test } from '@perry-hub/testkit';
import { expectedArtifact } from '../support/rust-worker-jobs.js';
import type { SimulatedWorker } from '../support/rust-workers.js';
import { CREDENTIALS, tarball } from '../support/test-hub.js';
import { until, withHub } from './dispatch-kit.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const SIGNING = (jobId: string) =>
  `{"type":"stage","job_id":"${jobId}","stage":"signing","message":"Routing to platform worker for signing and packaging..."}`;

/** The one `artifact_ready` the CLI may see: the final artifact, exactly as the original built it. */
function finalArtifactReady(hubUrl: string, jobId: string, target: string, name: string, bytes: Buffer): RegExp {
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(
    `^${esc(
      `{"type":"artifact_ready","job_id":"${jobId}","target":"${target}","artifact_name":"${name}","artifact_size":${bytes.length},"sha256":"${sha256(bytes)}","download_url":"${hubUrl}/api/v1/dl/`,
    )}[0-9a-f-]{36}","expires_in_secs":600\\}$`,
  );
}

describe('two-stage dispatch end to end', () => {
  test('Windows: cross-compiled on Linux, the precompiled bundle held, finished by a windows-sign worker that connects only once the job waits for it', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      await s.worker('linux', { name: 'kamatera-fra' });
      const licenseKey = await s.hub.registerLicense();
      const input = tarball('windows app');
      let signingSeenAt = 0;
      let signer: Promise<{ worker: SimulatedWorker; statusAtSigning: unknown }> | undefined;
      const run = s.publish(['windows'], {
        licenseKey,
        tarball: input,
        onMessage: (m) => {
          if (m.type !== 'stage' || m.stage !== 'signing' || signer) return;
          signingSeenAt = Date.now();
          // No windows-sign worker exists yet: the job must wait in the queue for one.
          signer = (async () => {
            const jobId = await run.jobId;
            const statusAtSigning = await s.status(jobId);
            await until('the job to wait in the queue', async () => (await s.hubStatus()).queue_length === 1);
            const worker = await s.worker('windows', { name: 'perry-sign-win', perryVersion: '0.5.14' });
            return { worker, statusAtSigning };
          })();
        },
      });
      const result = await run.result;
      const jobId = result.jobId!;
      expect(result.reason).toBe('Ready');
      expect(result.exitCode).toBe(0);
      expect(signer).toBeDefined();
      const { worker: win, statusAtSigning } = await signer!;
      expect(statusAtSigning).toEqual({ status: 'queued', position: 1 });
      const winConnected = s.history.connections.filter((c) => c.worker === 'perry-sign-win');
      expect(winConnected).toHaveLength(1);
      expect(winConnected[0]!.at).toBeGreaterThanOrEqual(signingSeenAt);

      const precompiled = expectedArtifact('linux', 'windows-precompiled', input);
      const final = expectedArtifact('windows', 'windows', precompiled);
      expect(result.artifact?.name).toBe('MyApp-Setup.exe');
      expect(result.artifact?.bytes).toEqual(final);

      // The CLI's transcript: the intermediate is never announced, the signing stage is.
      const t = result.transcript;
      expect(t[0]).toMatch(
        new RegExp(`^\\{"type":"job_created","job_id":"${jobId}","position":[01],"estimated_wait_secs":0\\}$`),
      );
      const ready = t.filter((f) => f.includes('"artifact_ready"'));
      expect(ready).toHaveLength(1);
      expect(ready[0]).toMatch(finalArtifactReady(s.hub.url, jobId, 'windows', 'MyApp-Setup.exe', final));
      expect(t.filter((f) => f.includes('precompiled'))).toEqual([]);
      expect(t.filter((f) => f === SIGNING(jobId))).toHaveLength(1);
      expect(t.filter((f) => f.includes('"complete"'))).toHaveLength(1);
      expect(t.at(-1)).toMatch(
        new RegExp(
          `^\\{"artifacts":\\[\\{"name":"MyApp-Setup.exe","sha256":"${sha256(final)}","size":${final.length}\\}\\],"duration_secs":[0-9.]+,"job_id":"${jobId}","success":true,"type":"complete"\\}$`,
        ),
      );
      // Linux frames come before the signing stage, the Windows worker's after it.
      const signingAt = t.indexOf(SIGNING(jobId));
      expect(t.indexOf(ready[0]!)).toBeGreaterThan(signingAt);
      expect(t.slice(0, signingAt).some((f) => f.includes('"stage":"packaging"'))).toBe(true);

      // What the workers did and were told.
      expect(s.history.started.map((h) => [h.worker, h.targets])).toEqual([
        ['kamatera-fra', ['windows']],
        ['perry-sign-win', ['windows-sign']],
      ]);
      expect(s.history.uploads.map((u) => [u.worker, u.target, u.status])).toEqual([
        ['kamatera-fra', 'windows-precompiled', 200],
        ['perry-sign-win', 'windows', 200],
      ]);
      expect(s.history.completes.map((c) => [c.worker, c.success, c.needsFinishing])).toEqual([
        ['kamatera-fra', true, 'windows'],
        ['perry-sign-win', true, null],
      ]);
      const assign = JSON.parse(win.received[0]!) as Record<string, unknown>;
      expect(Object.keys(assign)).toEqual([
        'type',
        'job_id',
        'auth_token',
        'manifest',
        'credentials',
        'tarball_url',
        'artifact_upload_url',
      ]);
      expect(assign).toMatchObject({
        type: 'job_assign',
        job_id: jobId,
        manifest: { app_name: 'MyApp', targets: ['windows-sign'] },
        credentials: CREDENTIALS,
        tarball_url: `${s.hub.url}/api/v1/tarball/${jobId}`,
        artifact_upload_url: `${s.hub.url}/api/v1/artifact/upload/${jobId}`,
      });
      expect(await s.status(jobId)).toEqual({ status: 'completed', position: 0 });
    });
  });

  test('iOS and macOS: cross-compiled on Linux, intermediates held, signed by the macOS worker', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      await s.worker('linux', { name: 'kamatera-fra', maxConcurrent: 2 });
      await s.worker('macos', { name: 'oakhost-tart', maxConcurrent: 2 });
      const apiToken = await s.hub.account('pro');
      const inputs = { ios: tarball('ios app'), macos: tarball('macos app') };
      const [ios, macos] = await Promise.all(
        (['ios', 'macos'] as const).map((target) =>
          s.publish([target], { apiToken, tarball: inputs[target] }).result.then((result) => ({ target, result })),
        ),
      );
      const expectations = [
        { run: ios!, sign: 'ios-sign', name: `MyApp-${ios!.result.jobId}.ipa` },
        { run: macos!, sign: 'macos-sign', name: 'MyApp.dmg' },
      ];
      for (const { run, sign, name } of expectations) {
        const { target, result } = run;
        const jobId = result.jobId!;
        expect(result.reason).toBe('Ready');
        const final = expectedArtifact(
          'macos',
          sign,
          expectedArtifact('linux', `${target}-precompiled`, inputs[target]),
        );
        expect(result.artifact?.name).toBe(name);
        expect(result.artifact?.bytes).toEqual(final);
        const t = result.transcript;
        const ready = t.filter((f) => f.includes('"artifact_ready"'));
        expect(ready).toHaveLength(1);
        expect(ready[0]).toMatch(finalArtifactReady(s.hub.url, jobId, sign, name, final));
        expect(t.filter((f) => f.includes('precompiled'))).toEqual([]);
        expect(t.filter((f) => f === SIGNING(jobId))).toHaveLength(1);
        expect(t.filter((f) => f.includes('"complete"'))).toHaveLength(1);
        expect(s.history.started.filter((h) => h.jobId === jobId).map((h) => [h.worker, h.targets])).toEqual([
          ['kamatera-fra', [target]],
          ['oakhost-tart', [sign]],
        ]);
        expect(s.history.uploads.filter((u) => u.jobId === jobId).map((u) => [u.target, u.status])).toEqual([
          [`${target}-precompiled`, 200],
          [sign, 200],
        ]);
        expect(await s.status(jobId)).toEqual({ status: 'completed', position: 0 });
      }
    });
  });
});

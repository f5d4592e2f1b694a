// Plugin builds (`build_type: "plugin"`): single-stage whatever the worker answers. A Linux worker
// that cross-compiles a Windows target says `needs_finishing: "windows"` and uploads its binary as
// `windows-precompiled`; for a plugin that binary is final, announced under its target, and the
// job never reaches a sign stage.
import { createHash } from 'node:crypto';
import { describe, expect } from 'vitest';
import { test } from '@perry-hub/testkit';
import { expectedArtifact } from '../support/rust-worker-jobs.js';
import { MANIFEST, tarball } from '../support/test-hub.js';
import { withHub } from './dispatch-kit.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('plugin builds', () => {
  test('a Windows plugin cross-compiled on Linux completes in one stage with the raw binary', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      const linux = await s.worker('linux', { name: 'kamatera-fra' });
      const apiToken = await s.hub.account('pro');
      const input = tarball('prettier-hone 2.1.0');
      const manifest = { ...MANIFEST, targets: ['windows'], build_type: 'plugin' };
      const result = await s.publish(['windows'], { apiToken, tarball: input, manifest }).result;
      const jobId = result.jobId!;
      expect(result.reason).toBe('Ready');
      const binary = expectedArtifact('linux', 'windows-precompiled', input);
      expect(result.artifact?.bytes).toEqual(binary);

      const t = result.transcript;
      expect(t.filter((f) => f.includes('"signing"'))).toEqual([]);
      const ready = t.filter((f) => f.includes('"artifact_ready"'));
      expect(ready).toHaveLength(1);
      expect(JSON.parse(ready[0]!)).toMatchObject({ target: 'windows', sha256: sha256(binary) });
      expect(t.filter((f) => f.includes('"complete"'))).toHaveLength(1);

      // One worker, one stage; the worker did ask for finishing, and was not followed.
      expect(s.history.started.map((h) => [h.worker, h.targets])).toEqual([['kamatera-fra', ['windows']]]);
      expect(s.history.completes.map((c) => [c.success, c.needsFinishing])).toEqual([[true, 'windows']]);
      expect(s.history.uploads.map((u) => [u.target, u.status])).toEqual([['windows-precompiled', 200]]);
      expect(await s.status(jobId)).toEqual({ status: 'completed', position: 0 });
      // The manifest reaches the worker as sent.
      const assign = JSON.parse(linux.received[0]!) as { type: string; manifest: unknown };
      expect(assign).toMatchObject({ type: 'job_assign', manifest });
    });
  });

  test('an app build with the same worker answer still goes to its sign stage', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      await s.worker('linux', { name: 'kamatera-fra' });
      await s.worker('windows', { name: 'perry-sign-win', perryVersion: '0.5.14' });
      const apiToken = await s.hub.account('pro');
      const manifest = { ...MANIFEST, targets: ['windows'], build_type: 'app' };
      const result = await s.publish(['windows'], { apiToken, tarball: tarball('app'), manifest }).result;
      expect(result.reason).toBe('Ready');
      expect(s.history.started.map((h) => h.targets)).toEqual([['windows'], ['windows-sign']]);
    });
  });
});

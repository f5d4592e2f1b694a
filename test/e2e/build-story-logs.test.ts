// The hub's log tells each build's story at info, one line per step and each with its jobId,
// a failed build with its reason; requests are logged at debug; no record repeats a key.
import { Writable } from 'node:stream';
import { describe, expect } from 'vitest';
import { createLogger } from '@perry-hub/runtime';
import { test } from '@perry-hub/testkit';
import { MANIFEST } from '../support/test-hub.js';
import { duplicateKeys } from '../support/log-records.js';
import { until, withHub } from './dispatch-kit.js';

type Line = Record<string, unknown> & { level: number; msg: string };

function capture(): { log: ReturnType<typeof createLogger>; lines: Line[]; raw: string[] } {
  const raw: string[] = [];
  const lines: Line[] = [];
  let pending = '';
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      pending += chunk.toString();
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const text = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        raw.push(text);
        lines.push(JSON.parse(text) as Line);
      }
      done();
    },
  });
  return { log: createLogger({ level: 'debug', name: 'perry-hub', destination }), lines, raw };
}

const INFO = 30;
const DEBUG = 20;

describe('build logs', () => {
  test('a build logs submitted, queued, assigned, stages, artifact stored and finished; a failed one its reason', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const { log, lines, raw } = capture();
    await withHub(
      { natsUrl, prefix, database },
      {},
      async (s) => {
        await s.worker('linux', {
          name: 'story-linux',
          script: (job) => (job.manifest.app_name === 'Broken' ? { fail: 'compile error: no main' } : undefined),
        });
        const licenseKey = await s.hub.registerLicense();
        const ok = s.publish(['linux'], { licenseKey });
        const okId = await ok.jobId;
        expect((await ok.result).exitCode).toBe(0);
        const bad = s.publish(['linux'], {
          licenseKey,
          manifest: { ...MANIFEST, app_name: 'Broken', targets: ['linux'] },
        });
        const badId = await bad.jobId;
        expect((await bad.result).exitCode).toBe(1);
        const of = (jobId: string, msg: string) => lines.filter((l) => l['jobId'] === jobId && l.msg === msg);
        await until(
          'both builds finished in the log',
          () => of(okId, 'build finished').length + of(badId, 'build finished').length === 2,
        );

        const story = (jobId: string) =>
          lines.filter((l) => l['jobId'] === jobId && l.level === INFO).map((l) => l.msg);
        console.log(`a successful build at info:\n  ${story(okId).join('\n  ')}`);
        for (const step of [
          'build submitted',
          'build queued',
          'build assigned',
          'build stage',
          'artifact stored',
          'build finished',
        ]) {
          expect(story(okId), step).toContain(step);
        }
        expect(of(okId, 'build submitted')[0]).toMatchObject({ targets: ['linux'], tier: 'free' });
        expect(of(okId, 'build submitted')[0]!['tarballBytes']).toBeGreaterThan(0);
        expect(String(of(okId, 'build submitted')[0]!['license'])).toMatch(/^FREE-.{4}…$/);
        expect(of(okId, 'build queued')[0]!['position']).toBeGreaterThanOrEqual(1);
        expect(of(okId, 'build assigned')[0]).toMatchObject({ worker: 'story-linux', attempt: 1 });
        expect(of(okId, 'build stage').map((l) => l['stage'])).toEqual(
          expect.arrayContaining(['extracting', 'compiling']),
        );
        expect(of(okId, 'artifact stored')[0]!['bytes']).toBeGreaterThan(0);
        expect(of(okId, 'build finished')[0]).toMatchObject({ outcome: 'succeeded' });
        expect(of(okId, 'build finished')[0]!['durationMs']).toBeGreaterThanOrEqual(0);

        const failed = of(badId, 'build finished')[0]!;
        expect(failed.level).toBe(INFO);
        expect(failed).toMatchObject({ outcome: 'failed', reason: 'compile error: no main' });

        const requests = lines.filter((l) => l.msg === 'request');
        expect(requests.every((l) => l.level === DEBUG)).toBe(true);
        expect(requests.map((l) => l['route'])).toEqual(expect.arrayContaining(['/api/v1/build', '/api/v1/dl/:token']));
        expect(raw.filter((r) => /\/api\/v1\/dl\/[^:]/.test(r))).toEqual([]);
      },
      { log },
    );
    expect(raw.flatMap((text) => duplicateKeys(text).map((key) => `${key} in ${text}`))).toEqual([]);
    expect(lines.some((l) => l['worker'] === 'story-linux' && l.msg === 'worker connected')).toBe(true);
  });
});

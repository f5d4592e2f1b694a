// Attacks on the HTTP edge that used to succeed, each run while a real build goes through the
// hub (Rust-exact CLI and Linux worker). Attackers are other client addresses: the hub trusts
// X-Forwarded-For from 127.0.0.1 (PERRY_HUB_TRUST_PROXY), the CLI and worker send none, so they
// are 127.0.0.1 and the attackers are whoever their X-Forwarded-For says.
import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { describe, expect } from 'vitest';
import { test } from '@perry-hub/testkit';
import { ADMIN_SECRET } from '../support/test-hub.js';
import { cliManifest, perryPublish as postForm } from '../integration/support/perry-publish.js';
import { TRUST_LOOPBACK_PROXY, ask, buildHead, partHead, rawRequest, type Answer } from './abuse-kit.js';
import { until, withHub, type Scenario } from './dispatch-kit.js';

const FAILURES_MAX = 20;
const REGISTER_MAX = 5;
const LIMITS = {
  ...TRUST_LOOPBACK_PROXY,
  PERRY_HUB_AUTH_FAILURES_MAX: String(FAILURES_MAX),
  PERRY_HUB_REGISTER_MAX_PER_HOUR: String(REGISTER_MAX),
  PERRY_HUB_MIN_BODY_BYTES_PER_SEC: '1000',
  PERRY_HUB_MIN_BODY_WINDOW_MS: '2000',
};
const MiB = 1024 * 1024;

/** A real build from 127.0.0.1, started now; resolves when the CLI is done. */
async function realBuild(s: Scenario, appName = 'MyApp') {
  const licenseKey = await s.hub.registerLicense();
  return s.publish(['linux'], { licenseKey, manifest: { ...MANIFEST_OF(appName), targets: ['linux'] } }).result;
}
const MANIFEST_OF = (app_name: string) => ({
  app_name,
  bundle_id: `com.example.${randomUUID().slice(0, 8)}`,
  version: '1',
  short_version: '1.0.0',
  entry: 'src/main.ts',
  icon: null,
  category: null,
  minimum_os_version: null,
  entitlements: null,
});

function expect429(answer: Answer): void {
  expect(answer.status).toBe(429);
  expect(answer.body.error?.code).toBe('RATE_LIMITED');
  expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
}

/** `count` attempts, `parallel` at a time, in order of sending. */
async function attempts(count: number, parallel: number, attempt: (i: number) => Promise<Answer>) {
  const answers: Answer[] = new Array<Answer>(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) {
        const i = next++;
        answers[i] = await attempt(i);
      }
    }),
  );
  return answers;
}

describe('HTTP abuse limits, while a real build runs', () => {
  test('1,250 wrong license keys, API tokens, admin secrets, job tokens and cancel guesses end in 429 with Retry-After; other addresses are unaffected', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, LIMITS, async (s) => {
      await s.worker('linux');
      const build = realBuild(s);
      const url = s.hub.url;
      const wrong = (i: number) => ({ authorization: `Bearer wrong-${i}-${randomUUID()}` });
      const kinds: [string, string, (i: number) => Promise<Answer>][] = [
        [
          'license key',
          '203.0.113.1',
          (i) =>
            ask(`${url}/api/v1/license/verify`, '203.0.113.1', {
              body: { license_key: `FREE-${String(i).padStart(4, '0')}-0000-0000` },
            }),
        ],
        ['API token', '203.0.113.2', (i) => ask(`${url}/api/v1/account`, '203.0.113.2', { headers: wrong(i) })],
        [
          'admin secret',
          '203.0.113.3',
          (i) => ask(`${url}/api/v1/admin/workers`, '203.0.113.3', { headers: wrong(i) }),
        ],
        [
          'job token',
          '203.0.113.4',
          (i) => ask(`${url}/api/v1/tarball/${randomUUID()}`, '203.0.113.4', { headers: wrong(i) }),
        ],
        [
          // A job id lets anyone watch; guessing its owner's license key to cancel it counts.
          'license key to cancel',
          '203.0.113.5',
          (i) =>
            ask(`${url}/api/v1/jobs/${randomUUID()}/cancel`, '203.0.113.5', {
              body: { license_key: `FREE-${String(i).padStart(4, '0')}-0000-0000` },
            }),
        ],
      ];
      for (const [kind, , attempt] of kinds) {
        const answers = await attempts(250, 8, attempt);
        const evaluated = answers.filter((a) => a.status !== 429);
        // Each evaluated attempt was a refusal of the credential (never a success, never a 5xx).
        for (const a of evaluated) {
          if (kind === 'license key') expect(a.body).toEqual({ valid: false, tier: null, platforms: null });
          else if (kind === 'license key to cancel') expect(a.body.error?.code).toBe('JOB_NOT_FOUND');
          else expect([401, 403]).toContain(a.status);
        }
        // Up to the limit (plus what was in flight when it was reached), then only 429s.
        expect(evaluated.length, kind).toBeGreaterThanOrEqual(FAILURES_MAX);
        expect(evaluated.length, kind).toBeLessThan(FAILURES_MAX + 8);
        expect(answers[0]!.status, kind).not.toBe(429);
        for (const a of answers.slice(FAILURES_MAX + 8)) expect429(a);
      }
      // Blocked: even the right admin secret, from the attacker's address...
      expect429(
        await ask(`${url}/api/v1/admin/workers`, '203.0.113.3', {
          headers: { authorization: `Bearer ${ADMIN_SECRET}` },
        }),
      );
      // ...but not from anyone else: wrong guesses elsewhere do not lock the owner out.
      const admin = await fetch(`${url}/api/v1/admin/workers`, {
        headers: { authorization: `Bearer ${ADMIN_SECRET}` },
      });
      expect(admin.status).toBe(200);
      const legit = await s.hub.registerLicense();
      const verified = await ask(`${url}/api/v1/license/verify`, '198.51.100.7', { body: { license_key: legit } });
      expect(verified.body['valid']).toBe(true);
      const result = await build;
      expect(result.reason).toBe('Ready');
      expect(result.exitCode).toBe(0);
    });
  });

  test('registering a new license per build stops at the per-address limit', async ({ natsUrl, prefix, database }) => {
    await withHub({ natsUrl, prefix, database }, LIMITS, async (s) => {
      await s.worker('linux');
      const build = realBuild(s);
      const answers: Answer[] = [];
      for (let i = 0; i < 30; i++)
        answers.push(await ask(`${s.hub.url}/api/v1/license/register`, '203.0.113.9', { body: {} }));
      expect(answers.slice(0, REGISTER_MAX).map((a) => a.status)).toEqual(Array(REGISTER_MAX).fill(200));
      for (const a of answers.slice(REGISTER_MAX)) expect429(a);
      expect(answers[REGISTER_MAX]!.body.error?.message).toBe(
        `License registration limit reached (${REGISTER_MAX} per hour from one address)`,
      );
      // Another address registers (and builds) as before.
      expect((await ask(`${s.hub.url}/api/v1/license/register`, '198.51.100.9', { body: {} })).status).toBe(200);
      expect((await build).exitCode).toBe(0);
      expect((await realBuild(s)).exitCode).toBe(0);
    });
  });

  test('an over-long manifest part is answered 413 at its limit, not read on', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, LIMITS, async (s) => {
      await s.worker('linux');
      const build = realBuild(s);
      const boundary = 'x'.repeat(20);
      // A declared size the pre-body checks let through; the manifest alone then exceeds 1 MiB.
      const exchange = rawRequest(
        s.hub.url,
        buildHead(s.hub.url, '203.0.113.11', { 'content-length': 200 * MiB }, boundary),
      );
      await exchange.write(`${partHead(boundary, 'manifest')}{"app_name":"`);
      const filler = Buffer.alloc(64 * 1024, 'a');
      const LIMIT = 1 * MiB;
      const CAP = 128 * MiB;
      let [answered, answeredAt, crossedAt] = [false, 0, 0];
      void exchange.answered.then(() => ([answered, answeredAt] = [true, Date.now()]));
      while (!answered && exchange.sent() < CAP) {
        if (!(await exchange.write(filler))) break;
        if (crossedAt === 0 && exchange.sent() > LIMIT) crossedAt = Date.now();
      }
      const answer = await Promise.race([
        exchange.answered,
        new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 10_000)),
      ]);
      const sentPastLimit = exchange.sent() - LIMIT;
      exchange.destroy();
      expect(answer, 'an answer to the over-long part').toBeDefined();
      expect(answer!.status).toBe(413);
      expect(JSON.parse(answer!.text)).toEqual({
        error: { code: 'UPLOAD_TOO_LARGE', message: "Field 'manifest' is too large (at most 1048576 bytes)" },
      });
      // What the socket buffers hold, no more: the old hub read on to the end (3 GB in 55 s).
      expect(sentPastLimit).toBeLessThan(24 * MiB);
      expect(crossedAt).toBeGreaterThan(0);
      expect(answeredAt - crossedAt).toBeLessThan(10_000);
      expect((await build).exitCode).toBe(0);
    });
  });

  test('a trickled body is cut with 408 (build form and JSON routes)', async ({ natsUrl, prefix, database }) => {
    await withHub({ natsUrl, prefix, database }, LIMITS, async (s) => {
      await s.worker('linux');
      const build = realBuild(s);
      const { host } = new URL(s.hub.url);
      const form = rawRequest(s.hub.url, buildHead(s.hub.url, '203.0.113.12', { 'content-length': 100_000 }, 'b'));
      const json = rawRequest(
        s.hub.url,
        `POST /api/v1/license/verify HTTP/1.1\r\nhost: ${host}\r\ncontent-type: application/json\r\n` +
          `x-forwarded-for: 203.0.113.13\r\ncontent-length: 1000\r\n\r\n`,
      );
      const started = Date.now();
      let open = true;
      void Promise.all([form.closed, json.closed]).then(() => (open = false));
      const body = `${partHead('b', 'manifest')}{"app_name":"x"`;
      for (let i = 0; open && Date.now() - started < 20_000; i++) {
        // One byte every 500 ms: 2 bytes/s, far under the hub's 1000 bytes/s for this test.
        await form.write(body[i % body.length]!);
        await json.write(i === 0 ? '{' : ' ');
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      expect(open, 'both trickling connections closed by the hub').toBe(false);
      for (const answer of [await form.answered, await json.answered]) {
        expect(answer.status).toBe(408);
        expect(JSON.parse(answer.text).error.code).toBe('REQUEST_TIMEOUT');
      }
      // The window is 2 s: cut after a few, where the old hub waited for the 600 s request timeout.
      expect(Date.now() - started).toBeLessThan(15_000);
      expect((await build).exitCode).toBe(0);
    });
  });

  test('a path-like or bidi artifact name is refused with 400 and never relayed', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, LIMITS, async (s) => {
      // The Linux worker names its artifact after the manifest's app_name; "hang" keeps a job running.
      const worker = await s.worker('linux', {
        script: (job) => (job.manifest.app_name === 'hang' ? { hang: true } : undefined),
      });
      const evil = await realBuild(s, '../../../../etc/passwd');
      expect(evil.messages.some((m) => m.type === 'artifact_ready')).toBe(false);
      const refused = s.history.uploads.find((u) => u.jobId === evil.jobId);
      expect(refused?.status).toBe(400);
      expect(evil.reason).toMatch(/Artifact upload failed: HTTP 400: .*path separator/);

      // Names a header can carry but the worker above cannot make: upload them with a real job token.
      const hanging = s.publish(['linux'], {
        licenseKey: await s.hub.registerLicense(),
        manifest: { ...MANIFEST_OF('hang'), targets: ['linux'] },
      });
      const jobId = await hanging.jobId;
      const assign = await until('job_assign', () =>
        worker.received
          .map(
            (f) => JSON.parse(f) as { type: string; job_id: string; auth_token: string; artifact_upload_url: string },
          )
          .find((m) => m.type === 'job_assign' && m.job_id === jobId),
      );
      const upload = (name: string) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = request(
            assign.artifact_upload_url,
            {
              method: 'POST',
              headers: {
                authorization: `Bearer ${assign.auth_token}`,
                'content-type': 'text/plain',
                // Header values travel as bytes; a worker means UTF-8.
                'x-artifact-name': Buffer.from(name, 'utf8').toString('latin1'),
              },
            },
            (res) => {
              let body = '';
              res.on('data', (d: Buffer) => (body += d.toString()));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
            },
          );
          req.on('error', reject);
          req.end(Buffer.from('artifact bytes').toString('base64'));
        });
      for (const [name, why] of [
        ['MyApp\u202Eppa.exe', /bidirectional/],
        ['..\\..\\Startup\\evil.exe', /path separator/],
        ['x'.repeat(256), /longer than 255 bytes/],
        ['MyApp\u0085.ipa', /control/],
      ] as const) {
        const reply = await upload(name);
        expect(reply.status, name).toBe(400);
        expect(JSON.parse(reply.body).error.message).toMatch(why);
      }
      expect((await upload('MyApp-1.0.AppImage')).status).toBe(200);
      const ok = await realBuild(s);
      expect(ok.exitCode).toBe(0);
    });
  });

  test('submissions are limited per license and per address; another license or address is not affected', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const env = {
      ...LIMITS,
      PERRY_HUB_SUBMISSIONS_PER_LICENSE_MAX_PER_HOUR: '3',
      PERRY_HUB_SUBMISSIONS_PER_ADDRESS_MAX_PER_HOUR: '6',
    };
    await withHub({ natsUrl, prefix, database }, env, async (s) => {
      await s.worker('linux');
      const build = realBuild(s);
      // Each a different project: an identical one would be a retry of the same build.
      let project = 0;
      const submit = async (from: string, licenseKey: string) => {
        const reply = await postForm(s.hub.url, {
          manifest: cliManifest({ targets: ['linux'] }),
          credentials: '{}',
          tarball: Buffer.from([0x1f, 0x8b, 0x08, 0, 1, 2, 3, project++]),
          licenseKey,
          headers: { 'x-forwarded-for': from },
        });
        return {
          status: reply.status,
          retryAfter: reply.headers['retry-after'],
          body: JSON.parse(reply.body) as Answer['body'],
        };
      };
      const [first, second] = [await s.hub.registerLicense(), await s.hub.registerLicense()];
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) statuses.push((await submit('203.0.113.60', first)).status);
      expect(statuses).toEqual([200, 200, 200]);
      const perLicense = await submit('203.0.113.60', first);
      expect(perLicense.status).toBe(429);
      expect(perLicense.body.error).toEqual({
        code: 'RATE_LIMITED',
        message: 'Submission limit reached (3 per hour for one license)',
      });
      expect(Number(perLicense.retryAfter)).toBeGreaterThanOrEqual(1);
      // The license counts wherever it is used from...
      expect((await submit('203.0.113.61', first)).status).toBe(429);
      // ...and the address counts whatever it presents (this is its 5th and 6th submission).
      expect((await submit('203.0.113.60', second)).status).toBe(200);
      expect((await submit('203.0.113.60', second)).status).toBe(200);
      const perAddress = await submit('203.0.113.60', second);
      expect(perAddress.status).toBe(429);
      expect(perAddress.body.error?.message).toBe('Submission limit reached (6 per hour from one address)');
      expect((await submit('203.0.113.62', second)).status).toBe(200);
      expect((await build).exitCode).toBe(0);
    });
  });

  test('no credential is not a guess (operations, original admin and transfer routes); a wrong admin secret is', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, { ...LIMITS, PERRY_HUB_AUTH_FAILURES_MAX: '2' }, async (s) => {
      const from = '203.0.113.80';
      const routes = [
        ['/api/v1/workers', 401],
        ['/api/v1/queue', 401],
        ['/api/v1/vms', 401],
        ['/api/v1/admin/workers', 403],
        [`/api/v1/tarball/${randomUUID()}`, 403],
      ] as const;
      for (let i = 0; i < 3; i++) {
        for (const [path, status] of routes)
          expect([path, (await ask(`${s.hub.url}${path}`, from)).status]).toEqual([path, status]);
      }
      const wrong = { authorization: 'Bearer wrong' };
      expect((await ask(`${s.hub.url}/api/v1/workers`, from, { headers: wrong })).status).toBe(401);
      expect((await ask(`${s.hub.url}/api/v1/admin/workers`, from, { headers: wrong })).status).toBe(403);
      expect429(await ask(`${s.hub.url}/api/v1/vms`, from, { headers: wrong }));
      expect429(await ask(`${s.hub.url}/api/v1/admin/workers`, from));
    });
  });

  test('self-hosted: no registration or submission limits, but failed authentications still are', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const env = {
      ...LIMITS,
      PERRY_HUB_SELF_HOSTED: 'true',
      PERRY_HUB_REGISTER_MAX_PER_HOUR: '1',
      PERRY_HUB_AUTH_FAILURES_MAX: '2',
    };
    await withHub({ natsUrl, prefix, database }, env, async (s) => {
      for (let i = 0; i < 3; i++) {
        expect((await ask(`${s.hub.url}/api/v1/license/register`, '203.0.113.70', { body: {} })).status).toBe(200);
      }
      const wrong = { authorization: 'Bearer wrong' };
      expect((await ask(`${s.hub.url}/api/v1/admin/workers`, '203.0.113.70', { headers: wrong })).status).toBe(403);
      expect((await ask(`${s.hub.url}/api/v1/admin/workers`, '203.0.113.70', { headers: wrong })).status).toBe(403);
      expect429(await ask(`${s.hub.url}/api/v1/admin/workers`, '203.0.113.70', { headers: wrong }));
    });
  });
});

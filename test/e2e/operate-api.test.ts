// The operator's and submitter's HTTP view of a running hub: the jobs API (list, detail, events,
// cancel) for the admin and for a job's owner, a stranger refused; workers, the queue and why it
// waits, also as waiting CLIs hear it in `queue_update`.
import { describe, expect } from 'vitest';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { jetstreamManager } from '@nats-io/jetstream';
import { topologyNames } from '@perry-hub/contracts';
import { connectTestNats, test } from '@perry-hub/testkit';
import { ADMIN_SECRET, CREDENTIALS } from '../support/test-hub.js';
import { ofType, until, withHub, type Scenario } from './dispatch-kit.js';

type Json = Record<string, unknown>;

async function get(s: Scenario, path: string, bearer?: string): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${s.hub.url}${path}`, {
    headers: bearer === undefined ? {} : { authorization: `Bearer ${bearer}` },
  });
  return { status: res.status, body: (await res.json()) as Json };
}

/** An SSE client: every event in order, and whether the server ended the stream. */
class EventStream {
  readonly events: EventSourceMessage[] = [];
  ended = false;
  status = 0;
  readonly #abort = new AbortController();

  static async open(url: string, bearer: string): Promise<EventStream> {
    const stream = new EventStream();
    const res = await fetch(url, { headers: { authorization: `Bearer ${bearer}` }, signal: stream.#abort.signal });
    stream.status = res.status;
    if (res.status !== 200 || !res.body) {
      stream.ended = true;
      return stream;
    }
    const parser = createParser({ onEvent: (e) => stream.events.push(e) });
    const decoder = new TextDecoder();
    void (async () => {
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          parser.feed(decoder.decode(chunk, { stream: true }));
        }
      } catch {
        // aborted
      }
      stream.ended = true;
    })();
    return stream;
  }

  data(): Json[] {
    return this.events.map((e) => JSON.parse(e.data) as Json);
  }

  close(): void {
    this.#abort.abort();
  }
}

describe('jobs API', () => {
  test('admin and owner list, read and follow a job; a stranger is told it does not exist', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      const linux = await s.worker('linux', {
        name: 'linux-ops',
        script: () => ({ hang: true }),
        perryVersion: '0.5.1',
      });
      const owner = await s.hub.registerLicense();
      const stranger = await s.hub.registerLicense();
      const apiToken = await s.hub.account('pro');

      // A finished build, then one that runs until cancelled.
      const doneJob = s.publish(['linux'], { licenseKey: owner, download: false });
      const doneId = await doneJob.jobId;
      await until('the first build to start', () => linux.jobs.has(doneId));
      linux.jobs.get(doneId)!.cancel(); // the worker fails it: error + complete{success:false}
      expect((await doneJob.result).exitCode).toBe(1);

      const running = s.publish(['linux'], { licenseKey: owner, download: false });
      const runningId = await running.jobId;
      await until('the second build to start', () => linux.jobs.has(runningId));
      const cli = await s.watch(runningId);
      await cli.next('a stage', ofType('stage'));

      // The list: the admin sees both, newest first; the owner its own; a stranger nothing.
      const adminList = await get(s, '/api/v1/jobs', ADMIN_SECRET);
      expect(adminList.status).toBe(200);
      expect((adminList.body['jobs'] as Json[]).map((j) => j['id'])).toEqual([runningId, doneId]);
      const ownerList = await get(s, '/api/v1/jobs?state=running', owner);
      expect((ownerList.body['jobs'] as Json[]).map((j) => j['id'])).toEqual([runningId]);
      expect((await get(s, '/api/v1/jobs', stranger)).body['jobs']).toEqual([]);
      expect((await get(s, '/api/v1/jobs', apiToken)).body['jobs']).toEqual([]);
      expect((await get(s, `/api/v1/jobs?license=${owner}`, stranger)).status).toBe(403);
      expect((await get(s, '/api/v1/jobs')).status).toBe(401);
      expect((await get(s, '/api/v1/jobs', 'f'.repeat(64))).status).toBe(401);
      expect((await get(s, '/api/v1/jobs', 'FREE-0000-NOT-A-KEY')).status).toBe(401);
      // Pages of one, by cursor.
      const page1 = await get(s, '/api/v1/jobs?limit=1', ADMIN_SECRET);
      expect((page1.body['jobs'] as Json[]).map((j) => j['id'])).toEqual([runningId]);
      const page2 = await get(s, `/api/v1/jobs?limit=1&cursor=${String(page1.body['next_cursor'])}`, ADMIN_SECRET);
      expect((page2.body['jobs'] as Json[]).map((j) => j['id'])).toEqual([doneId]);
      expect(page2.body['next_cursor']).toBeNull();
      expect((await get(s, '/api/v1/jobs?state=bogus', ADMIN_SECRET)).status).toBe(400);
      expect((await get(s, '/api/v1/jobs?target=visionos', ADMIN_SECRET)).body['jobs']).toEqual([]);
      expect(((await get(s, '/api/v1/jobs?target=linux', ADMIN_SECRET)).body['jobs'] as Json[]).length).toBe(2);

      // The detail: history, attempts with their worker, manifest without credentials.
      const detail = await get(s, `/api/v1/jobs/${doneId}`, owner);
      expect(detail.status).toBe(200);
      expect(detail.body).toMatchObject({
        id: doneId,
        state: 'failed',
        attempt: 1,
        worker: 'linux-ops',
        position: 0,
        manifest: { targets: ['linux'] },
      });
      expect((detail.body['history'] as Json[]).map((h) => h['state'])).toEqual(['queued', 'running', 'failed']);
      expect(detail.body['attempts']).toMatchObject([{ attempt: 1, worker: 'linux-ops', outcome: 'failed' }]);
      expect(typeof detail.body['error']).toBe('string');
      const text = JSON.stringify(detail.body);
      for (const value of Object.values(CREDENTIALS)) if (typeof value === 'string') expect(text).not.toContain(value);
      expect((await get(s, `/api/v1/jobs/${doneId}`, ADMIN_SECRET)).status).toBe(200);
      for (const who of [stranger, apiToken]) {
        expect(await get(s, `/api/v1/jobs/${doneId}`, who)).toEqual({
          status: 404,
          body: { error: { code: 'JOB_NOT_FOUND', message: 'Job not found' } },
        });
      }
      expect((await get(s, '/api/v1/jobs/00000000-0000-4000-8000-000000000000', ADMIN_SECRET)).status).toBe(404);

      // Workers: arrays, slots, the job each runs. The original's admin route keeps its shape.
      // A slot taken reaches presence within its half-second settle.
      const workers = await until('the running job in presence', async () => {
        const w = await get(s, '/api/v1/workers', ADMIN_SECRET);
        return JSON.stringify(w.body).includes(runningId) ? w : undefined;
      });
      expect(workers.body['workers']).toMatchObject([
        {
          name: 'linux-ops',
          capabilities: ['linux', 'android', 'windows', 'ios', 'macos', 'tvos'],
          slots: { max: 2, busy: 1, free: 1 },
          jobs: [{ job_id: runningId, attempt: 1 }],
          perry_version: '0.5.1',
        },
      ]);
      expect((await get(s, '/api/v1/workers', owner)).status).toBe(403);
      const legacy = await get(s, '/api/v1/admin/workers', ADMIN_SECRET);
      expect(Object.keys((legacy.body['workers'] as Json[])[0]!).sort()).toEqual([
        'busy',
        'capabilities',
        'name',
        'perry_version',
      ]);

      // Events: the stranger gets nothing; the owner the whole log so far, then live, then the end.
      expect((await EventStream.open(`${s.hub.url}/api/v1/jobs/${runningId}/events`, stranger)).status).toBe(404);
      const sse = await EventStream.open(`${s.hub.url}/api/v1/jobs/${runningId}/events`, owner);
      expect(sse.status).toBe(200);
      await until('the replay', () => sse.data().some((m) => m['type'] === 'stage'));
      expect(sse.data().some((m) => m['type'] === 'complete')).toBe(false);
      // The stranger may not cancel; the owner may.
      expect((await s.cancel(runningId, { licenseKey: stranger })).status).toBe(404);
      expect(await s.cancel(runningId, { licenseKey: owner })).toEqual({
        status: 200,
        body: { job_id: runningId, cancelled: true },
      });
      await until('the live end of the stream', () => sse.ended);
      expect(sse.data().at(-1)).toMatchObject({ type: 'complete', job_id: runningId, success: false });
      await cli.next('complete', ofType('complete'));
      // The same messages the CLI saw over the WebSocket (it got job_created first, from the gateway).
      expect(sse.events.map((e) => e.data)).toEqual(cli.frames.filter((f) => !f.includes('"job_created"')));
      // A finished job's stream replays and ends at once; Last-Event-ID continues after an event.
      const replay = await EventStream.open(`${s.hub.url}/api/v1/jobs/${runningId}/events`, ADMIN_SECRET);
      await until('the replay of a finished job to end', () => replay.ended);
      expect(replay.events.map((e) => e.data)).toEqual(sse.events.map((e) => e.data));
      const resumed = await fetch(`${s.hub.url}/api/v1/jobs/${runningId}/events`, {
        headers: { authorization: `Bearer ${ADMIN_SECRET}`, 'last-event-id': sse.events.at(-2)!.id! },
      });
      expect((await resumed.text()).match(/^data: /gm)).toHaveLength(1);
      // Every read of the log has ended (the CLI's watch and three event streams): each deleted its
      // consumer as it ended instead of leaving it to expire.
      const tap = await connectTestNats(natsUrl);
      try {
        const jsm = await jetstreamManager(tap);
        await until(
          'no consumer left on the job log',
          async () => {
            for await (const c of jsm.consumers.list(topologyNames(prefix).eventsStream)) {
              if ((c.config.filter_subject ?? '').includes(runningId)) return false;
            }
            return true;
          },
          5_000,
        );
      } finally {
        await tap.close();
      }

      // The admin cancels anyone's job.
      const third = s.publish(['linux'], { licenseKey: owner, download: false });
      const thirdId = await third.jobId;
      await until('the third build to start', () => linux.jobs.has(thirdId));
      expect(await s.cancel(thirdId, { admin: true })).toEqual({
        status: 200,
        body: { job_id: thirdId, cancelled: true },
      });
      await third.result;
      const cancelled = await get(s, `/api/v1/jobs/${thirdId}`, ADMIN_SECRET);
      expect((cancelled.body['history'] as Json[]).map((h) => h['state'])).toContain('cancel_requested');
      console.log(`jobs API: ${JSON.stringify(cancelled.body['attempts'])}`);

      // An account's API token: its own jobs, which it may read and cancel; a license may not.
      const byAccount = s.publish(['linux'], { apiToken, download: false });
      const accountJob = await byAccount.jobId;
      await until('the account build to start', () => linux.jobs.has(accountJob));
      expect(((await get(s, '/api/v1/jobs', apiToken)).body['jobs'] as Json[]).map((j) => j['id'])).toEqual([
        accountJob,
      ]);
      expect((await get(s, `/api/v1/jobs/${accountJob}`, apiToken)).body).toMatchObject({ state: 'running' });
      expect((await get(s, `/api/v1/jobs/${accountJob}`, owner)).status).toBe(404);
      expect((await s.cancel(accountJob, { licenseKey: owner })).status).toBe(404);
      expect(await s.cancel(accountJob, { apiToken })).toEqual({
        status: 200,
        body: { job_id: accountJob, cancelled: true },
      });
      await byAccount.result;
    });
  });

  test('a license key or API token as Bearer cancels its own job only, like it reads it', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    // Room for this test's refusals, each a failed authentication (abuse-http tests the limit).
    await withHub({ natsUrl, prefix, database }, { PERRY_HUB_AUTH_FAILURES_MAX: '100' }, async (s) => {
      const owner = await s.hub.registerLicense();
      const stranger = await s.hub.registerLicense();
      const apiToken = await s.hub.account('pro');
      // visionos: no worker has it, so both jobs wait in the queue until cancelled.
      const byLicense = s.publish(['visionos'], { licenseKey: owner, download: false });
      const licenseJob = await byLicense.jobId;
      const byAccount = s.publish(['visionos'], { apiToken, download: false });
      const accountJob = await byAccount.jobId;
      const cancel = async (id: string, bearer: string) => {
        const res = await fetch(`${s.hub.url}/api/v1/jobs/${id}/cancel`, {
          method: 'POST',
          headers: { authorization: `Bearer ${bearer}` },
        });
        return { status: res.status, body: (await res.json()) as Json };
      };
      const notFound = { status: 404, body: { error: { code: 'JOB_NOT_FOUND', message: 'Job not found' } } };
      // Cancel takes the credentials the detail takes, and answers a stranger like the detail does.
      for (const [id, who] of [
        [licenseJob, stranger],
        [licenseJob, apiToken],
        [accountJob, owner],
      ] as const) {
        expect((await get(s, `/api/v1/jobs/${id}`, who)).status).toBe(404);
        expect(await cancel(id, who)).toEqual(notFound);
      }
      expect(await cancel(licenseJob, 'FREE-0000-NOT-A-KEY')).toMatchObject({
        status: 401,
        body: { error: { code: 'LICENSE_INVALID' } },
      });
      expect(await cancel(licenseJob, 'f'.repeat(64))).toMatchObject({
        status: 401,
        body: { error: { code: 'AUTH_INVALID' } },
      });
      expect(await cancel(licenseJob, owner)).toEqual({ status: 200, body: { job_id: licenseJob, cancelled: true } });
      expect(await cancel(accountJob, apiToken)).toEqual({
        status: 200,
        body: { job_id: accountJob, cancelled: true },
      });
      expect((await byLicense.result).exitCode).toBe(1);
      expect((await byAccount.result).exitCode).toBe(1);
    });
  });

  test('operations routes answer 401 or 403 by credential; the original admin routes keep their 403', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    // Room for this test's refusals, each a failed authentication (abuse-http tests the limit).
    await withHub({ natsUrl, prefix, database }, { PERRY_HUB_AUTH_FAILURES_MAX: '100' }, async (s) => {
      const owner = await s.hub.registerLicense();
      const apiToken = await s.hub.account('pro');
      // The operations routes: who is missing or unknown is a 401, who is known but not the admin a 403.
      for (const path of ['/api/v1/workers', '/api/v1/queue', '/api/v1/vms']) {
        const refusals = [
          [undefined, 401, 'AUTH_REQUIRED'],
          ['not-the-admin-secret', 401, 'LICENSE_INVALID'],
          ['f'.repeat(64), 401, 'AUTH_INVALID'],
          [owner, 403, 'FORBIDDEN'],
          [apiToken, 403, 'FORBIDDEN'],
        ] as const;
        for (const [bearer, status, code] of refusals) {
          const answer = await get(s, path, bearer);
          expect([path, bearer, answer.status, (answer.body['error'] as Json)['code']]).toEqual([
            path,
            bearer,
            status,
            code,
          ]);
        }
        // A wrong secret here was meant as the admin's: the message says so.
        expect((await get(s, path, 'not-the-admin-secret')).body['error']).toMatchObject({
          message: 'Not the admin secret, nor a valid license key',
        });
        expect((await get(s, path, ADMIN_SECRET)).status).toBe(200);
      }
      // The original's admin routes keep its answer to every failure (reference 1.2 #2).
      const forbidden = {
        status: 403,
        body: { error: { code: 'FORBIDDEN', message: 'Admin authentication required' } },
      };
      for (const bearer of [undefined, 'not-the-admin-secret', owner]) {
        expect(await get(s, '/api/v1/admin/workers', bearer)).toEqual(forbidden);
        const res = await fetch(`${s.hub.url}/api/v1/admin/update-perry`, {
          method: 'POST',
          headers: bearer === undefined ? {} : { authorization: `Bearer ${bearer}` },
        });
        expect({ status: res.status, body: await res.json() }).toEqual(forbidden);
      }
    });
  });

  test('the queue says why jobs wait, and so do the waiting CLIs', async ({ natsUrl, prefix, database }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      const linux = await s.worker('linux', { name: 'linux-q', script: () => ({ hang: true }) });
      const owner = await s.hub.registerLicense();
      // visionos: no worker has it, and no VM provider can start one.
      const nobody = s.publish(['visionos'], { licenseKey: await s.hub.registerLicense(), download: false });
      const nobodyId = await nobody.jobId;
      // A free license runs one build at a time: its second waits though the worker has a slot.
      const first = s.publish(['linux'], { licenseKey: owner, download: false });
      const firstId = await first.jobId;
      await until('the first build to start', () => linux.jobs.has(firstId));
      const second = s.publish(['linux'], { licenseKey: owner, download: false });
      const secondId = await second.jobId;

      const queue = await until('both waits to be explained', async () => {
        const q = await get(s, '/api/v1/queue', ADMIN_SECRET);
        const lines = q.body['queues'] as Json[];
        return lines.length === 2 ? q.body : undefined;
      });
      expect(queue).toMatchObject({ queued: 2, running: 1 });
      expect(queue['queues']).toMatchObject([
        { target: 'linux', tier: 'free', queued: 1, waiting: [{ reason: 'license_limit', jobs: 1 }] },
        { target: 'visionos', tier: 'free', queued: 1, waiting: [{ reason: 'no_worker', jobs: 1 }] },
      ]);
      expect((await get(s, '/api/v1/queue', owner)).status).toBe(403);
      const waiting = await s.watch(nobodyId);
      const told = await waiting.next(
        'a queue_update with a reason',
        (m) => m['type'] === 'queue_update' && 'message' in m,
      );
      expect(told['message']).toMatch(/No visionos worker is connected and no VM provider can start one/);
      const limited = await s.watch(secondId);
      const limit = await limited.next('the license limit', (m) => m['type'] === 'queue_update' && 'message' in m);
      expect(limit['message']).toMatch(/This license runs 1 build at a time/);
      const detail = await get(s, `/api/v1/jobs/${secondId}`, owner);
      expect(detail.body).toMatchObject({ state: 'queued', position: 1 });
      const vms = await get(s, '/api/v1/vms', ADMIN_SECRET);
      expect(vms).toMatchObject({ status: 200, body: { provider: 'none', pools: [{ pool: 'windows-sign' }] } });
      for (const id of [nobodyId, firstId, secondId]) await s.cancel(id, { admin: true });
    });
  });
});

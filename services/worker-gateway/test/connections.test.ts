// Roles, the worker secret, hello defaults, presence, heartbeats and the socket limits, against a
// real gateway on the test kit's NATS.
import { createServer } from 'node:http';
import { describe, expect } from 'vitest';
import { test } from '@perry-hub/testkit';
import { call, describeConfig, instanceKey } from '@perry-hub/runtime';
import { Kvm, type KvEntry } from '@nats-io/kv';
import { topologyNames, workersSummaryEndpoint, type WorkerPresence } from '@perry-hub/contracts';
import { workerGateway } from '../src/index.js';
import {
  LINUX_HELLO,
  Peer,
  memoryLog,
  openBus,
  sleep,
  startGateway,
  withGateway,
  until,
  workerIdOf,
  type Bus,
} from './support/harness.js';

const SECRET = { PERRY_HUB_WORKER_SECRET: 's3cr3t' };

describe('roles and the worker secret', () => {
  test('a wrong secret gets the original error, then the socket closes', async ({ natsUrl, prefix }) => {
    const gw = await startGateway(natsUrl, prefix, SECRET);
    try {
      for (const secret of ['wrong', undefined, 's3cr3t-but-longer']) {
        const peer = await Peer.open(gw.url);
        peer.send({ ...LINUX_HELLO, secret });
        await peer.closed;
        expect(peer.frames).toEqual(['{"type":"error","code":"AUTH_FAILED","message":"Invalid worker secret"}']);
      }
    } finally {
      await gw.service.stop();
    }
  });

  test('unparseable frames are dropped; an unknown first message closes without a word', async ({
    natsUrl,
    prefix,
  }) => {
    await withGateway(natsUrl, prefix, { env: SECRET }, async ({ bus, gw }) => {
      const worker = await Peer.open(`${gw.url}/any/path`);
      worker.send('not json {');
      worker.send(LINUX_HELLO);
      await workerIdOf(bus, 'kamatera-fra');
      expect(worker.closeCode).toBeUndefined();

      const stranger = await Peer.open(gw.url);
      stranger.send({ type: 'ping' });
      await stranger.closed;
      expect(stranger.frames).toEqual([]);
      worker.close();
    });
  });

  test('subscribe to an unknown job: JOB_NOT_FOUND without job_id, then close', async ({ natsUrl, prefix }) => {
    await withGateway(natsUrl, prefix, {}, async ({ gw }) => {
      for (const jobId of ['3f2c8a9e-5b1d-4c7e-9a2f-1e6d0b7c4a58', 'a.b.>']) {
        const cli = await Peer.open(gw.url);
        cli.send({ type: 'subscribe', job_id: jobId });
        await cli.closed;
        expect(cli.frames).toEqual(['{"type":"error","code":"JOB_NOT_FOUND","message":"Job not found"}']);
      }
    });
  });

  test('/ws on an attached HTTP server; other paths are refused there', async ({ natsUrl, prefix }) => {
    const bus = await openBus(natsUrl, prefix);
    bus.jobs.set('job-1', { status: 'queued', position: 3 });
    const gw = await startGateway(natsUrl, prefix);
    const http = createServer((_req, res) => res.end('http'));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const detach = (gw.service.info['attach'] as (s: typeof http) => () => void)(http);
    try {
      const port = (http.address() as { port: number }).port;
      for (const path of ['/ws', '//ws']) {
        const cli = await Peer.open(`ws://127.0.0.1:${port}${path}`);
        cli.send({ type: 'subscribe', job_id: 'job-1' });
        expect(await cli.frameCount(1)).toEqual([
          '{"type":"job_created","job_id":"job-1","position":3,"estimated_wait_secs":0}',
        ]);
        cli.close();
      }
      await expect(Peer.open(`ws://127.0.0.1:${port}/other`)).rejects.toThrow(/404/);
    } finally {
      detach();
      http.close();
      await gw.service.stop();
      await bus.close();
    }
  });
});

describe('worker_hello is checked on arrival', () => {
  test('a bad name, unknown capabilities or max_concurrent out of range: error frame, 1008, nothing registered', async ({
    natsUrl,
    prefix,
  }) => {
    await withGateway(natsUrl, prefix, { env: SECRET }, async ({ bus, gw }) => {
      const bad: [Record<string, unknown>, RegExp][] = [
        [{ name: 'x'.repeat(2_000) }, /name must be 1 to 128 characters/],
        [{ name: "w'; DROP TABLE builds; --" }, /name must be/],
        [{ capabilities: ['linux', 'beos'] }, /unknown capabilities \["beos"\]/],
        [{ capabilities: 'linux' }, /capabilities must be a non-empty list/],
        [{ max_concurrent: 0 }, /max_concurrent must be an integer from 1 to 64/],
        [{ max_concurrent: 1_000 }, /max_concurrent must be an integer from 1 to 64/],
      ];
      for (const [change, reason] of bad) {
        const peer = await Peer.open(gw.url);
        peer.send({ ...LINUX_HELLO, ...change });
        const closed = await peer.closed;
        expect(closed).toEqual({ code: 1008, reason: 'invalid worker_hello' });
        expect(peer.frames).toHaveLength(1);
        const frame = JSON.parse(peer.frames[0]!) as Record<string, unknown>;
        expect(frame).toMatchObject({ type: 'error', code: 'BAD_REQUEST' });
        expect(frame['message']).toMatch(reason);
      }
      // None of them reached presence or the bus; a good hello still does.
      expect(bus.lifecycle.filter((l) => l.subject.endsWith('.connected'))).toEqual([]);
      const good = await Peer.open(gw.url);
      good.send(LINUX_HELLO);
      await workerIdOf(bus, 'kamatera-fra');
      expect(bus.lifecycle.filter((l) => l.subject.endsWith('.connected'))).toHaveLength(1);
      good.close();
    });
  });
});

describe('hello, presence and lifecycle', () => {
  test('defaults: Windows without max_concurrent has one slot; no capabilities means macos', async ({
    natsUrl,
    prefix,
  }) => {
    await withGateway(natsUrl, prefix, { env: SECRET }, async ({ bus, gw }) => {
      const win = await Peer.open(gw.url);
      win.send(
        '{"type":"worker_hello","capabilities":["windows-sign"],"name":"perry-sign-win","secret":"s3cr3t","perry_version":"0.5.14"}',
      );
      const bare = await Peer.open(gw.url);
      bare.send({ type: 'worker_hello', secret: 's3cr3t' });
      const winId = await workerIdOf(bus, 'perry-sign-win');
      const bareId = await workerIdOf(bus, 'worker-1');
      const presence = (await bus.presence.get(winId))!.json<WorkerPresence>();
      expect(presence).toMatchObject({
        workerId: winId,
        name: 'perry-sign-win',
        capabilities: ['windows-sign'],
        maxConcurrent: 1,
        activeJobs: 0,
        perryVersion: '0.5.14',
        gatewayId: gw.service.instanceId,
      });
      expect((await bus.presence.get(bareId))!.json<WorkerPresence>()).toMatchObject({
        capabilities: ['macos'],
        maxConcurrent: 1,
        perryVersion: '',
      });
      await until('connected events', () => bus.lifecycle.filter((l) => l.subject.endsWith('.connected')).length === 2);
      await until(
        'summary',
        async () => (await call(bus.nc, bus.subjects, workersSummaryEndpoint, {})).connectedWorkers === 2,
      );
      expect(await call(bus.nc, bus.subjects, workersSummaryEndpoint, {})).toEqual({
        connectedWorkers: 2,
        supportedTargets: ['macos'],
        expectedPerryVersion: '',
      });

      // Closing removes presence and announces the loss.
      win.close();
      await until('presence removed', async () => (await bus.presence.get(winId))?.operation !== 'PUT');
      const lost = await until('lost', () => bus.lifecycle.find((l) => l.subject.endsWith('.lost')));
      expect(lost.value).toMatchObject({ workerId: winId, gatewayId: gw.service.instanceId, jobs: [] });
      bare.close();
    });
  });

  test('stop() closes every socket and hands its workers back: no loss announced, its liveness record gone', async ({
    natsUrl,
    prefix,
  }) => {
    const bus = await openBus(natsUrl, prefix);
    const gw = await startGateway(natsUrl, prefix);
    const worker = await Peer.open(gw.url);
    worker.send(LINUX_HELLO);
    const id = await workerIdOf(bus, 'kamatera-fra');
    const instances = await new Kvm(bus.nc).open(topologyNames(prefix).instancesBucket);
    const record = instanceKey('worker-gateway', gw.service.instanceId);
    expect((await instances.get(record))?.operation).toBe('PUT');
    await gw.service.stop();
    expect((await worker.closed).code).toBe(1001);
    // The workers did nothing wrong: their jobs must not be lost (a retry counted). The scheduler
    // releases them once the gateway's liveness record is gone; their entries stay until long silent.
    expect((await instances.get(record))?.operation).not.toBe('PUT');
    expect((await bus.presence.get(id))?.operation).toBe('PUT');
    await new Promise((r) => setTimeout(r, 300));
    expect(bus.lifecycle.filter((l) => l.subject.endsWith('.lost'))).toEqual([]);
    await bus.close();
  });
});

describe('heartbeats and limits', () => {
  const FAST = { PERRY_HUB_WORKER_LOST_MS: '1500', PERRY_HUB_WS_PING_INTERVAL_MS: '300' };

  /** A gateway with fast limits (liveness TTL 600 ms) and one idle Linux worker: its id and entry. */
  async function withIdleWorker(
    natsUrl: string,
    prefix: string,
    body: (bus: Bus, worker: Peer, id: string, written: KvEntry) => Promise<void>,
  ): Promise<void> {
    await withGateway(natsUrl, prefix, { env: { ...FAST, PERRY_HUB_INSTANCE_TTL_MS: '600' } }, async ({ bus, gw }) => {
      const worker = await Peer.open(gw.url);
      worker.send(LINUX_HELLO);
      const id = await workerIdOf(bus, 'kamatera-fra');
      await body(bus, worker, id, (await bus.presence.get(id))!);
      worker.close();
    });
  }

  test('the hub pings, answers pings, and keeps a worker that answers', async ({ natsUrl, prefix }) => {
    await withGateway(natsUrl, prefix, { env: FAST }, async ({ gw }) => {
      const worker = await Peer.open(gw.url);
      let pings = 0;
      worker.ws.on('ping', () => pings++);
      const pong = new Promise<Buffer>((resolve) => worker.ws.once('pong', resolve));
      worker.send(LINUX_HELLO);
      worker.ws.ping('hello?');
      expect((await pong).toString()).toBe('hello?');
      await sleep(2_500); // longer than the lost limit: the auto-pongs keep it alive
      expect(pings).toBeGreaterThanOrEqual(3);
      expect(worker.closeCode).toBeUndefined();
      worker.close();
    });
  });

  test('an idle worker costs no presence writes and stays counted; an entry of this gateway whose worker is gone is deleted', async ({
    natsUrl,
    prefix,
  }) => {
    await withIdleWorker(natsUrl, prefix, async (bus, worker, id, written) => {
      // As if a delete had failed: an entry of this gateway that no connection holds.
      const stray = { ...written.json<WorkerPresence>(), workerId: 'stray', name: 'stray' };
      await bus.presence.put('stray', JSON.stringify(stray));
      await sleep(2_500); // past the lost limit: the gateway's liveness record vouches for its worker
      expect((await bus.presence.get(id))!.revision).toBe(written.revision);
      expect(await call(bus.nc, bus.subjects, workersSummaryEndpoint, {})).toMatchObject({ connectedWorkers: 1 });
      await until('the stray entry deleted', async () => (await bus.presence.get('stray'))?.operation !== 'PUT');
      expect(worker.closeCode).toBeUndefined();
    });
  });

  test("a dead gateway's entries are deleted once silent twice the lost limit, not before; a live one's are kept", async ({
    natsUrl,
    prefix,
  }) => {
    await withIdleWorker(natsUrl, prefix, async (bus, _worker, live, written) => {
      // Left by a gateway killed long ago (no liveness record any more), and by one just killed.
      const entry = (workerId: string, silentMs: number): WorkerPresence => ({
        ...written.json<WorkerPresence>(),
        workerId,
        name: workerId,
        gatewayId: 'worker-gateway-0dead0ff',
        heartbeatAt: Date.now() - silentMs,
      });
      await bus.presence.put('old-ghost', JSON.stringify(entry('old-ghost', 10_000)));
      await bus.presence.put('new-ghost', JSON.stringify(entry('new-ghost', 0)));
      await until(
        'the long-silent ghost deleted',
        async () => (await bus.presence.get('old-ghost'))?.operation !== 'PUT',
        10_000,
      );
      // Silent less than twice the limit (3 s) when the first pass ran: still there; then gone.
      expect((await bus.presence.get('new-ghost'))?.operation).toBe('PUT');
      await until(
        'the newer ghost deleted in its turn',
        async () => (await bus.presence.get('new-ghost'))?.operation !== 'PUT',
        10_000,
      );
      // The live gateway's own idle worker is never taken for a ghost.
      expect((await bus.presence.get(live))?.operation).toBe('PUT');
      expect(await call(bus.nc, bus.subjects, workersSummaryEndpoint, {})).toMatchObject({ connectedWorkers: 1 });
    });
  });

  test('a silent worker is closed and lost after the limit', async ({ natsUrl, prefix }) => {
    await withGateway(natsUrl, prefix, { env: FAST }, async ({ bus, gw }) => {
      // autoPong off: a peer that is connected but dead to the world.
      const worker = new Peer(gw.url, { autoPong: false });
      await worker.opened;
      worker.send(LINUX_HELLO);
      const id = await workerIdOf(bus, 'kamatera-fra');
      const started = Date.now();
      await worker.closed;
      expect(Date.now() - started).toBeGreaterThan(1_000);
      await until('lost', () => bus.lifecycle.find((l) => l.subject.endsWith('.lost') && l.value['workerId'] === id));
    });
  });

  test('a frame over the size limit closes the connection (1009)', async ({ natsUrl, prefix }) => {
    const gw = await startGateway(natsUrl, prefix, { PERRY_HUB_WS_MAX_PAYLOAD_BYTES: '4096' });
    try {
      const worker = await Peer.open(gw.url);
      worker.send(LINUX_HELLO);
      worker.send({ type: 'log', job_id: 'x', line: 'y'.repeat(5_000) });
      expect((await worker.closed).code).toBe(1009);
    } finally {
      await gw.service.stop();
    }
  });

  test('a CLI that does not read is disconnected instead of buffered', async ({ natsUrl, prefix }) => {
    const bus = await openBus(natsUrl, prefix);
    bus.jobs.set('job-slow', { status: 'running', position: 0 });
    const line = JSON.stringify({
      job_id: 'job-slow',
      line: 'x'.repeat(60_000),
      stage: 'compiling',
      stream: 'stdout',
      type: 'log',
    });
    for (let i = 0; i < 400; i++) await bus.append('job-slow', line); // ~24 MB of history, more than the kernel buffers hold
    const gw = await startGateway(natsUrl, prefix, {
      PERRY_HUB_WS_MAX_BUFFERED_BYTES: '65536',
      PERRY_HUB_WS_SLOW_READER_MS: '500',
    });
    try {
      const cli = await Peer.open(gw.url);
      cli.send({ type: 'subscribe', job_id: 'job-slow' });
      await cli.frameCount(1);
      // Stop reading: the TCP window fills, the gateway's buffer passes the limit and stays there.
      (cli.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      const started = Date.now();
      const count = gw.service.info['connectionCount'] as () => number;
      expect(count()).toBe(1);
      await until('the gateway dropped it', () => count() === 0, 15_000);
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(cli.frames.length).toBeLessThan(401);
    } finally {
      await gw.service.stop();
      await bus.close();
    }
  });

  test('config table names every variable', () => {
    const env = describeConfig(workerGateway.config).map((v) => v.env);
    expect(env).toEqual(
      expect.arrayContaining(['PERRY_HUB_WS_PORT', 'PERRY_HUB_WORKER_LOST_MS', 'PERRY_HUB_WORKER_SECRET']),
    );
  });
});

describe('limits of the WebSocket edge', () => {
  test('connections per client address: the excess gets 429; another address and a freed slot get in', async ({
    natsUrl,
    prefix,
  }) => {
    const gw = await startGateway(natsUrl, prefix, { PERRY_HUB_WS_MAX_CONNECTIONS_PER_ADDRESS: '3' });
    try {
      const held = [await Peer.open(gw.url), await Peer.open(gw.url), await Peer.open(gw.url)];
      await expect(Peer.open(gw.url)).rejects.toThrow(/429/);
      const other = await Peer.open(gw.url, { localAddress: '127.0.0.2' });
      held[0]!.close();
      await held[0]!.closed;
      await until('the slot to be released', async () => {
        const again = await Peer.open(gw.url).catch(() => undefined);
        again?.close();
        return again !== undefined;
      });
      for (const peer of [...held, other]) peer.close();
    } finally {
      await gw.service.stop();
    }
  });

  test('a subscribe storm on one job: one job-status request, watchers capped, the excess refused', async ({
    natsUrl,
    prefix,
  }) => {
    const bus = await openBus(natsUrl, prefix);
    bus.jobs.set('job-storm', { status: 'running', position: 0 });
    bus.jobs.set('job-other', { status: 'queued', position: 2 });
    const gw = await startGateway(natsUrl, prefix, {
      PERRY_HUB_WS_MAX_WATCHERS_PER_JOB: '4',
      PERRY_HUB_WS_MAX_CONNECTIONS_PER_ADDRESS: '100',
    });
    try {
      const peers = await Promise.all(Array.from({ length: 40 }, () => Peer.open(gw.url)));
      for (const peer of peers) peer.send({ type: 'subscribe', job_id: 'job-storm' });
      await until('every socket answered', () => peers.every((p) => p.frames.length > 0));
      const created = peers.filter((p) => p.frames[0]!.includes('"job_created"'));
      const refused = peers.filter((p) => p.frames[0]!.includes('"RATE_LIMITED"'));
      expect(created).toHaveLength(4);
      expect(refused).toHaveLength(36);
      expect(refused[0]!.frames).toEqual([
        '{"type":"error","code":"RATE_LIMITED","message":"Too many connections are watching this job"}',
      ]);
      expect(await refused[0]!.closed).toEqual({ code: 1008, reason: 'too many watchers' });
      // Not one request per socket: the concurrent subscribers shared one.
      expect(bus.statusAsked.filter((id) => id === 'job-storm')).toHaveLength(1);
      // Another job is not affected, and a watcher that leaves frees its place.
      const other = await Peer.open(gw.url);
      other.send({ type: 'subscribe', job_id: 'job-other' });
      expect(await other.frameCount(1)).toEqual([
        '{"type":"job_created","job_id":"job-other","position":2,"estimated_wait_secs":0}',
      ]);
      created[0]!.close();
      await created[0]!.closed;
      const late = await until('a freed place', async () => {
        const peer = await Peer.open(gw.url);
        peer.send({ type: 'subscribe', job_id: 'job-storm' });
        const first = await peer.frameCount(1);
        if (first[0]!.includes('job_created')) return peer;
        return undefined;
      });
      late.close();
      for (const peer of [...peers, other]) peer.close();
    } finally {
      await gw.service.stop();
      await bus.close();
    }
  });

  test('a watcher that keeps sending frames is closed; the log gets one line per interval, not one per socket', async ({
    natsUrl,
    prefix,
  }) => {
    const bus = await openBus(natsUrl, prefix);
    bus.jobs.set('job-chatty', { status: 'running', position: 0 });
    const logged = memoryLog();
    const gw = await startGateway(
      natsUrl,
      prefix,
      { PERRY_HUB_WS_MAX_WATCHER_FRAMES: '3', PERRY_HUB_WS_MAX_CONNECTIONS_PER_ADDRESS: '100' },
      logged.log,
    );
    try {
      const before = logged.lines.length;
      const peers = await Promise.all(Array.from({ length: 30 }, () => Peer.open(gw.url)));
      for (const peer of peers) {
        peer.send({ type: 'subscribe', job_id: 'job-chatty' });
        for (let i = 0; i < 10; i++) peer.send({ type: 'subscribe', job_id: 'job-chatty' });
      }
      for (const peer of peers) expect(await peer.closed).toEqual({ code: 1008, reason: 'too many frames' });
      const lines = logged.lines.slice(before).filter((l) => l.includes('too many frames'));
      expect(lines).toHaveLength(1);
    } finally {
      await gw.service.stop();
      await bus.close();
    }
  });
});

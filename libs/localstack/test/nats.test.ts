import { connect } from '@nats-io/transport-node';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LOCAL_NATS_GO_RUNTIME, LocalStackError, startNatsServer, type NatsServer } from '../src/index.js';
import { isGone, makeTempDir } from './support/helpers.js';

const temp = makeTempDir('nats');
const started: NatsServer[] = [];
afterAll(async () => {
  await Promise.all(started.map((server) => server.stop()));
  temp.remove();
});

async function start(name: string, port?: number): Promise<NatsServer> {
  const server = await startNatsServer({
    dataDir: join(temp.dir, name),
    logFile: join(temp.dir, `${name}.log`),
    ...(port === undefined ? {} : { port }),
  });
  started.push(server);
  return server;
}

describe('startNatsServer', () => {
  it('answers a real client and a JetStream API request', async () => {
    const server = await start('a');
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    expect(server.storeDir).toBe(join(temp.dir, 'a', 'jetstream'));
    const nc = await connect({ servers: server.url });
    try {
      const reply = await nc.request('$JS.API.INFO', '', { timeout: 5_000 });
      const info = reply.json<{ type: string; error?: unknown }>();
      expect(info.type).toBe('io.nats.jetstream.api.v1.account_info_response');
      expect(info.error).toBeUndefined();
    } finally {
      await nc.close();
    }
  });

  it('serves its monitoring endpoints on loopback only, when asked, and counts messages there', async () => {
    expect((await start('m0')).monitorUrl).toBeUndefined();
    const server = await startNatsServer({
      dataDir: join(temp.dir, 'm'),
      host: '0.0.0.0',
      monitorPort: 0,
    });
    started.push(server);
    expect(server.monitorUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const varz = async () => (await (await fetch(`${server.monitorUrl}/varz`)).json()) as { in_msgs: number };
    const before = (await varz()).in_msgs;
    const nc = await connect({ servers: `nats://127.0.0.1:${server.port}` });
    try {
      for (let i = 0; i < 5; i++) nc.publish('x', 'y');
      await nc.flush();
    } finally {
      await nc.close();
    }
    expect((await varz()).in_msgs - before).toBe(5);
    const config = readFileSync(join(temp.dir, 'm', 'nats.conf'), 'utf8');
    expect(config).toContain(`http: "127.0.0.1:${new URL(server.monitorUrl!).port}"`);
  });

  it('runs the server with its Go runtime settings, each overridden by the environment', async () => {
    const environ = (pid: number) =>
      new Map(
        readFileSync(`/proc/${pid}/environ`, 'utf8')
          .split('\0')
          .filter(Boolean)
          .map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]),
      );
    const saved = { GOGC: process.env['GOGC'], GOMAXPROCS: process.env['GOMAXPROCS'] };
    delete process.env['GOGC'];
    delete process.env['GOMAXPROCS'];
    try {
      const server = await startNatsServer({ dataDir: join(temp.dir, 'go'), monitorPort: 0 });
      started.push(server);
      const varz = (await (await fetch(`${server.monitorUrl}/varz`)).json()) as { gomaxprocs: number };
      expect(varz.gomaxprocs).toBe(1);
      const env = environ(server.pid);
      expect({ GOGC: env.get('GOGC'), GOMEMLIMIT: env.get('GOMEMLIMIT') }).toEqual({
        GOGC: LOCAL_NATS_GO_RUNTIME.GOGC,
        GOMEMLIMIT: LOCAL_NATS_GO_RUNTIME.GOMEMLIMIT,
      });

      process.env['GOGC'] = '150';
      process.env['GOMAXPROCS'] = '2';
      const overridden = await startNatsServer({ dataDir: join(temp.dir, 'go2'), monitorPort: 0 });
      started.push(overridden);
      const varz2 = (await (await fetch(`${overridden.monitorUrl}/varz`)).json()) as { gomaxprocs: number };
      expect(varz2.gomaxprocs).toBe(2);
      expect(environ(overridden.pid).get('GOGC')).toBe('150');
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('stops idempotently and leaves no process', async () => {
    const server = await start('b');
    expect(isGone(server.pid)).toBe(false);
    await Promise.all([server.stop(), server.stop()]);
    await server.stop();
    expect(isGone(server.pid)).toBe(true);
    await expect(server.exited).resolves.toBeTypeOf('number');
  });

  it('reports EXITED_EARLY with the log tail when its fixed port is taken', async () => {
    const first = await start('c');
    const error = await startNatsServer({ dataDir: join(temp.dir, 'd'), port: first.port }).catch(
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(LocalStackError);
    expect((error as LocalStackError).code).toBe('EXITED_EARLY');
    expect((error as LocalStackError).message).toMatch(/address already in use/i);
  });
});

// The NATS permission matrix, on a nats-server of its own configured exactly as a deployment is
// (exact prefix, one NKEY user per service plus a tool, all inside the HUB account): what each
// identity needs works, and each attack is refused by the server with a permissions violation.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nkeyAuthenticator, PermissionViolationError, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import {
  backingStream,
  natsInboxPrefix,
  natsUsers,
  SERVICE_NAMES,
  subjects as makeSubjects,
  topology,
  topologyFor,
  topologyNames,
  type NatsIdentity,
  type ServiceName,
} from '@perry-hub/contracts';
import { ensureNkeySeeds, SEED_FILE_SUFFIX } from '@perry-hub/localstack';
import { ensureTopology, readSeedFile } from '@perry-hub/runtime';
import { startIsolatedNats, uniquePrefix, type IsolatedNats } from '@perry-hub/testkit';

const TOOL = 'tool-attacker';
const prefix = uniquePrefix();
const s = makeSubjects(prefix);
const names = topologyNames(prefix);
let dir: string;
let server: IsolatedNats;

interface Client {
  nc: NatsConnection;
  /** Every permissions violation the server reported to this connection. */
  violations: PermissionViolationError[];
}
const clients = new Map<string, Client>();

async function connectAs(name: ServiceName | typeof TOOL): Promise<Client> {
  const who: NatsIdentity = name === TOOL ? { tool: 'attacker' } : name;
  const nc = await connect({
    servers: server.url,
    authenticator: nkeyAuthenticator(readSeedFile(join(dir, `${name}${SEED_FILE_SUFFIX}`))),
    inboxPrefix: natsInboxPrefix(prefix, who),
  });
  const client: Client = { nc, violations: [] };
  void (async () => {
    for await (const st of nc.status()) {
      if (st.type === 'error' && st.error instanceof PermissionViolationError) client.violations.push(st.error);
    }
  })();
  return client;
}

function as(name: ServiceName | typeof TOOL): Client {
  return clients.get(name)!;
}

/**
 * The violations reported after `attempt`. The server answers -ERR before the PONG of a flush;
 * the status iterator hands it over a moment later.
 */
async function violationsAfter(client: Client, attempt: () => unknown): Promise<PermissionViolationError[]> {
  const before = client.violations.length;
  try {
    await attempt();
  } catch {
    // A refused request times out or fails; the violation is what is asserted.
  }
  await client.nc.flush();
  await new Promise((resolve) => setTimeout(resolve, 50));
  return client.violations.slice(before);
}

async function expectDenied(client: Client, operation: 'publish' | 'subscription', subject: string): Promise<void> {
  const before = client.violations.length;
  if (operation === 'publish') client.nc.publish(subject, '{}');
  else client.nc.subscribe(subject);
  await client.nc.flush();
  await expect
    .poll(() => client.violations.slice(before).map((v) => [v.operation, v.subject]), { timeout: 2_000 })
    .toContainEqual([operation, subject]);
}

const expectPublishDenied = (client: Client, subject: string) => expectDenied(client, 'publish', subject);
const expectSubscribeDenied = (client: Client, subject: string) => expectDenied(client, 'subscription', subject);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'perry-hub-nats-auth-'));
  const keys = ensureNkeySeeds(dir, [...SERVICE_NAMES, TOOL]);
  server = await startIsolatedNats({ users: natsUsers(prefix, keys), expectPermissionViolations: true });
  for (const name of [...SERVICE_NAMES, TOOL] as const) clients.set(name, await connectAs(name));
});

afterAll(async () => {
  await Promise.all([...clients.values()].map((c) => c.nc.close()));
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('NATS authentication and least privilege', () => {
  it('refuses a connection without credentials, and one with an unknown key', async () => {
    await expect(connect({ servers: server.url, reconnect: false })).rejects.toThrow(/Authorization/i);
    const stranger = ensureNkeySeeds(join(dir, 'stranger'), ['stranger']);
    expect(stranger.size).toBe(1);
    await expect(
      connect({
        servers: server.url,
        reconnect: false,
        authenticator: nkeyAuthenticator(readSeedFile(join(dir, 'stranger', `stranger${SEED_FILE_SUFFIX}`))),
      }),
    ).rejects.toThrow(/Authorization/i);
  });

  it('lets every service ensure exactly its own topology', async () => {
    for (const name of SERVICE_NAMES) {
      const client = as(name);
      const found = await violationsAfter(client, () => ensureTopology(client.nc, topologyFor(prefix, name)));
      expect(found, name).toEqual([]);
    }
  });

  it('carries the calls each service makes: request, reply through the private inbox', async () => {
    const license = as('license').nc.subscribe(s.endpoint('license', 'account-create'), {
      queue: `${prefix}.license`,
      callback: (_err, msg) => void msg.respond('{"ok":true,"result":{}}'),
    });
    const gateway = as('worker-gateway').nc.subscribe(s.workerCommandAll, {
      callback: (_err, msg) => void msg.respond('{"ok":true}'),
    });
    const submit = as('ingest').nc.subscribe(s.buildsSubmit, {
      callback: (_err, msg) => void msg.respond('{"ok":true}'),
    });
    await Promise.all([as('license').nc.flush(), as('worker-gateway').nc.flush(), as('ingest').nc.flush()]);

    const reply = await as('ingest').nc.request(s.endpoint('license', 'account-create'), '{}', { timeout: 2_000 });
    expect(reply.json()).toEqual({ ok: true, result: {} });
    const assigned = await as('scheduler').nc.request(s.workerCommand('w1'), '{}', { timeout: 2_000 });
    expect(assigned.json()).toEqual({ ok: true });
    const submitted = await as(TOOL).nc.request(s.buildsSubmit, '{}', { timeout: 2_000 });
    expect(submitted.json()).toEqual({ ok: true });

    const depth = as('vm-controller').nc.subscribe(s.queueDepth, { max: 1 });
    await as('vm-controller').nc.flush();
    as('scheduler').nc.publish(s.queueDepth, '{}');
    for await (const m of depth) expect(m.subject).toBe(s.queueDepth);

    for (const sub of [license, gateway, submit]) sub.unsubscribe();
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (const name of [...SERVICE_NAMES, TOOL] as const) expect(as(name).violations, name).toEqual([]);
  });

  it('refuses account-create to the tool and to every service that does not call it', async () => {
    const subject = s.endpoint('license', 'account-create');
    for (const name of [TOOL, 'scheduler', 'worker-gateway', 'vm-controller', 'artifact-store'] as const) {
      await expectPublishDenied(as(name), subject);
    }
  });

  it("refuses reading workers' commands (and their job tokens) to all but the gateway", async () => {
    for (const name of [TOOL, 'ingest', 'license', 'scheduler', 'vm-controller', 'artifact-store'] as const) {
      await expectSubscribeDenied(as(name), s.workerCommandAll);
      await expectSubscribeDenied(as(name), s.workerCommand('w1'));
    }
  });

  it('refuses forged worker events to all but the gateway', async () => {
    const subject = s.endpoint('scheduler', 'worker-event');
    for (const name of [TOOL, 'ingest', 'license', 'vm-controller', 'artifact-store'] as const) {
      await expectPublishDenied(as(name), subject);
    }
  });

  it('refuses reading the blobs Object Store to all but ingest and the artifact store', async () => {
    const stream = `OBJ_${names.blobsBucket}`;
    for (const name of [TOOL, 'license', 'scheduler', 'worker-gateway', 'vm-controller'] as const) {
      await expectPublishDenied(as(name), `$JS.API.STREAM.INFO.${stream}`);
      await expectPublishDenied(as(name), `$JS.API.DIRECT.GET.${stream}.$O.${names.blobsBucket}.M.eA==`);
      await expectPublishDenied(as(name), `$JS.API.CONSUMER.CREATE.${stream}.x.$O.${names.blobsBucket}.C.>`);
      await expectSubscribeDenied(as(name), `$O.${names.blobsBucket}.>`);
    }
  });

  it('refuses deleting any stream, bucket or consumer backing stream to every identity', async () => {
    const streams = topology(prefix).flatMap((e) => backingStream(e) ?? []);
    for (const name of [...SERVICE_NAMES, TOOL] as const) {
      for (const stream of streams) await expectPublishDenied(as(name), `$JS.API.STREAM.DELETE.${stream}`);
    }
    // Still there: the scheduler can read the intake stream's info.
    const info = await as('scheduler').nc.request(`$JS.API.STREAM.INFO.${names.intakeStream}`, '', { timeout: 2_000 });
    expect((info.json() as { config?: { name?: string } }).config?.name).toBe(names.intakeStream);
  });

  it("refuses reading another identity's replies", async () => {
    await expectSubscribeDenied(as('ingest'), `${natsInboxPrefix(prefix, 'license')}.>`);
    await expectSubscribeDenied(as(TOOL), `${natsInboxPrefix(prefix, 'ingest')}.>`);
    await expectSubscribeDenied(as('scheduler'), '_INBOX.>');
  });

  const kv = [names.presenceBucket, names.leasesBucket, names.vmBucket];
  const internalPublishes: readonly [string, string][] = [
    ...SERVICE_NAMES.map((name): [string, string] => [`${name} endpoint`, s.endpoint(name, 'health')]),
    ['license endpoint', s.endpoint('license', 'authorize-submission')],
    ['micro discovery', '$SRV.PING'],
    ['intake stream', s.intake('job1')],
    ['job events', s.jobEvents('job1')],
    ['job done', s.jobDone('job1')],
    ['job callbacks', s.jobCallbacks('job1')],
    ['queue depth', s.queueDepth],
    ['worker connected', s.workers('connected')],
    ['worker lost', s.workers('lost')],
    ['worker activity', s.workers('activity')],
    ['worker command', s.workerCommand('w1')],
    ['vm state', s.vmState('sign')],
    ['vm prewarm', s.vmPrewarm],
    ['metrics', s.metrics('vm')],
    ['JetStream account info', '$JS.API.INFO'],
    ['JetStream stream list', '$JS.API.STREAM.LIST'],
    ['intake stream info', `$JS.API.STREAM.INFO.${names.intakeStream}`],
    ['events consumer', `$JS.API.CONSUMER.CREATE.${names.eventsStream}.x.${s.jobEvents('job1')}`],
    ['intake consumer next', `$JS.API.CONSUMER.MSG.NEXT.${names.intakeStream}.${names.schedulerIntakeConsumer}`],
    ...kv.map((b): [string, string] => [`KV ${b}`, `$KV.${b}.key`]),
    ...kv.map((b): [string, string] => [`KV ${b} get`, `$JS.API.DIRECT.GET.KV_${b}.$KV.${b}.key`]),
    ['Object Store', `$O.${names.blobsBucket}.M.eA==`],
  ];
  it.each(internalPublishes)('refuses the tool publishing to %s', async (_family, subject) => {
    await expectPublishDenied(as(TOOL), subject);
  });

  const internalSubscribes: readonly [string, string][] = [
    ['everything', '>'],
    ['the prefix', `${prefix}.>`],
    ['endpoints', `${prefix}.svc.>`],
    ['submissions', s.buildsSubmit],
    ['job events', s.jobEventsAll],
    ['queue depth', s.queueDepth],
    ['workers', `${prefix}.workers.>`],
    ['vm', `${prefix}.vm.>`],
    ['metrics', `${prefix}.metrics.>`],
    ['micro discovery', '$SRV.>'],
    ['JetStream', '$JS.>'],
    ['KV', '$KV.>'],
    ['Object Store', '$O.>'],
  ];
  it.each(internalSubscribes)('refuses the tool subscribing to %s', async (_family, subject) => {
    await expectSubscribeDenied(as(TOOL), subject);
  });
});

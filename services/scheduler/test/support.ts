/**
 * Drives a real scheduler the way its neighbours do: job records as the ingest writes them, worker
 * presence as the gateway keeps it, and a fake gateway that answers worker commands.
 */
import { randomUUID } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  EVENT_BATCH_HEADER,
  splitEvents,
  subjects,
  topologyNames,
  type AssignCommand,
  type WorkerCommand,
} from '@perry-hub/contracts';
import { dbOptions, openPool, type Pool, type RowDataPacket } from '@perry-hub/db';
import { connectTestNats } from '@perry-hub/testkit';

export interface Harness {
  nc: NatsConnection;
  db: Pool;
  presence: KV;
  commands: { workerId: string; command: WorkerCommand }[];
  timers: NodeJS.Timeout[];
  close(): Promise<void>;
}

const enc = new TextEncoder();

export async function harness(
  natsUrl: string,
  prefix: string,
  database: { host: string; port: number; user: string; password: string; database: string },
): Promise<Harness> {
  const nc = await connectTestNats(natsUrl);
  const db = openPool(dbOptions(database, 2));
  const presence = await new Kvm(nc).open(topologyNames(prefix).presenceBucket);
  const h: Harness = {
    nc,
    db,
    presence,
    commands: [],
    timers: [],
    close: async () => {
      for (const t of h.timers) clearInterval(t);
      await nc.close();
      await db.end();
    },
  };
  return h;
}

/** A connected worker: presence entry plus a fake gateway answering its command subject. */
export async function addWorker(
  h: Harness,
  prefix: string,
  workerId: string,
  capabilities: string[],
  maxConcurrent = 1,
  accept = true,
  /**
   * The gateway instance holding it; with `beats: false` its entry is written once, as a live
   * gateway does for an idle worker; with `listsJobs`, the entry says which jobs it holds.
   */
  options: { gatewayId?: string; beats?: boolean; listsJobs?: boolean } = {},
) {
  const now = Date.now();
  const entry = {
    // As a gateway of this version writes it: the jobs its worker holds (none: the fake gateway
    // answers commands but never starts a build).
    ...(options.listsJobs ? { jobs: [] } : {}),
    workerId,
    name: `sim-${workerId}`,
    capabilities,
    maxConcurrent,
    activeJobs: 0,
    perryVersion: '0.5.14',
    gatewayId: options.gatewayId ?? 'fake',
    connectedAt: now,
    heartbeatAt: now,
  };
  await h.presence.put(workerId, JSON.stringify(entry));
  const sub = h.nc.subscribe(subjects(prefix).workerCommand(workerId), {
    callback: (_err, msg) => {
      h.commands.push({ workerId, command: JSON.parse(new TextDecoder().decode(msg.data)) as WorkerCommand });
      msg.respond(enc.encode(JSON.stringify({ ok: true, result: { accepted: accept } })));
    },
  });
  const beat = setInterval(
    () => void h.presence.put(workerId, JSON.stringify({ ...entry, heartbeatAt: Date.now() })).catch(() => undefined),
    300,
  );
  if (options.beats === false) clearInterval(beat);
  return {
    disconnect: async () => {
      clearInterval(beat);
      sub.unsubscribe();
      await h.presence.delete(workerId);
    },
    /** Goes silent without a goodbye (its gateway died). */
    vanish: () => {
      clearInterval(beat);
      sub.unsubscribe();
    },
  };
}

export async function submitJob(
  h: Harness,
  prefix: string,
  opts: {
    targets?: string[];
    tier?: 'free' | 'pro';
    licenseKey?: string;
    queuedAt?: number;
    /** The row only, as when nats-server lost the acknowledged intake message in a crash. */
    loseIntake?: boolean;
  } = {},
): Promise<string> {
  const jobId = randomUUID();
  const tier = opts.tier ?? 'free';
  const targets = opts.targets ?? ['linux'];
  const queuedAt = opts.queuedAt ?? Date.now();
  const manifest = {
    app_name: 'MyApp',
    bundle_id: 'com.example.myapp',
    version: '1',
    entry: 'src/main.ts',
    targets,
    extra_key: 'kept',
  };
  await h.db.query(
    `INSERT INTO builds (id, licenseKey, tier, targets, status, queuedAt, priority, attempt, stage, manifest, tarball_ref)
     VALUES (?, ?, ?, ?, 'queued', ?, ?, 0, 'build', ?, ?)`,
    [
      jobId,
      opts.licenseKey ?? `LIC-${jobId.slice(0, 8)}`,
      tier,
      JSON.stringify(targets),
      queuedAt,
      tier === 'pro' ? 10 : 1,
      JSON.stringify(manifest),
      `tarballs/${jobId}`,
    ],
  );
  if (opts.loseIntake) return jobId;
  await jetstream(h.nc).publish(
    subjects(prefix).intake(jobId),
    enc.encode(
      JSON.stringify({
        jobId,
        licenseKey: opts.licenseKey ?? `LIC-${jobId.slice(0, 8)}`,
        tier,
        priority: tier === 'pro' ? 10 : 1,
        targets,
        queuedAt,
        via: 'http',
      }),
    ),
    { msgID: jobId },
  );
  return jobId;
}

export async function jobRow(h: Harness, jobId: string): Promise<RowDataPacket> {
  const [rows] = await h.db.query<RowDataPacket[]>('SELECT * FROM builds WHERE id = ?', [jobId]);
  return rows[0]!;
}

export function assignsFor(h: Harness, jobId: string): (AssignCommand & { workerId: string })[] {
  return h.commands
    .filter((c) => c.command.kind === 'assign' && c.command.jobId === jobId)
    .map((c) => ({ ...(c.command as AssignCommand), workerId: c.workerId }));
}

/** The job's event log as the CLI would receive it. */
export async function eventLog(h: Harness, prefix: string, jobId: string): Promise<Record<string, unknown>[]> {
  const js = jetstream(h.nc);
  const consumer = await js.consumers.get(topologyNames(prefix).eventsStream, {
    filter_subjects: subjects(prefix).jobEvents(jobId),
  });
  const out: Record<string, unknown>[] = [];
  for (;;) {
    const m = await consumer.next({ expires: 1000 });
    if (!m) break;
    for (const frame of splitEvents(m.data, m.headers?.get(EVENT_BATCH_HEADER))) {
      out.push(JSON.parse(new TextDecoder().decode(frame)) as Record<string, unknown>);
    }
    if (m.info.pending === 0) break;
  }
  return out;
}

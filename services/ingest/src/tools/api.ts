/**
 * A tool's own NATS API, `<p>.tools.<name>.<op>` (contracts: messages/tools.ts). The NATS user
 * `tool-<name>` may publish only under its own name, so the subject tells who asks; everything is
 * scoped to the jobs that tool submitted (`builds.tool`), and a job of anyone else answers
 * JOB_NOT_FOUND exactly like an unknown one. Plain request/reply only: the tool never touches the
 * JetStream API or the hub's buckets.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import type { Subscription } from '@nats-io/nats-core';
import {
  EVENT_BATCH_HEADER,
  HubError,
  TOOL_CHUNK_MAX_BYTES,
  TOOL_JOB_OUTCOMES,
  ToolArtifactRequest,
  ToolEventsRequest,
  ToolJobRequest,
  ToolListRequest,
  ToolSubmitRequest,
  ToolUploadRequest,
  splitEvents,
  tarballObjectName,
  topologyNames,
  type BuildAccepted,
  type ToolArtifactChunk,
  type ToolEventsReply,
  type ToolJobOutcome,
  type ToolUploadReply,
} from '@perry-hub/contracts';
import type { RowDataPacket } from '@perry-hub/db';
import { decode, endOrderedRead, orderedConsumer, respond } from '@perry-hub/runtime';
import { cancelBuild } from '../cancel.js';
import type { Caller } from '../caller.js';
import { Submission, type IntakeDeps } from '../intake.js';
import { jobDetail, listJobs, readJob } from '../job-records.js';
import { MAX_UPLOAD_BYTES } from '../limits.js';
import { assertNoForbiddenKeys } from '../manifest.js';
import { checkCallbackUrl, type CallbackPolicy } from './callback-url.js';
import type { ToolRecord, ToolStore } from './store.js';

export interface ToolApiDeps extends IntakeDeps {
  /** PERRY_HUB_PUBLIC_URL, for the artifacts' links in a status. */
  publicUrl?: string;
  tools: ToolStore;
  callbackPolicy: CallbackPolicy;
  subjectPrefix: string;
}

const notFound = () => new HubError('JOB_NOT_FOUND', 'Job not found');
const partPrefix = (tool: string, uploadId: string) => `uploads/tool-${tool}/${uploadId}/`;

/** One chunk of the tarball, stored as its own object until the submit joins them. */
async function upload(deps: ToolApiDeps, tool: ToolRecord, payload: unknown): Promise<ToolUploadReply> {
  const request = decode(ToolUploadRequest, payload, 'upload request');
  const data = Buffer.from(request.data, 'base64');
  if (data.length === 0 || data.length > TOOL_CHUNK_MAX_BYTES) {
    throw new HubError('BAD_REQUEST', `A chunk holds 1 to ${TOOL_CHUNK_MAX_BYTES} bytes (got ${data.length})`);
  }
  if (request.offset + data.length > MAX_UPLOAD_BYTES) {
    throw new HubError('UPLOAD_TOO_LARGE', `Tarball too large: at most ${MAX_UPLOAD_BYTES} bytes`);
  }
  if (request.upload_id === undefined && request.offset !== 0) {
    throw new HubError('BAD_REQUEST', "The first chunk has offset 0; later ones name its 'upload_id'");
  }
  const uploadId = request.upload_id ?? randomUUID();
  const name = `${partPrefix(tool.name, uploadId)}${String(request.offset).padStart(12, '0')}`;
  await deps.blobs.put(name, Readable.from([data]), { maxBytes: TOOL_CHUNK_MAX_BYTES });
  return { upload_id: uploadId, received_bytes: request.offset + data.length };
}

/**
 * Join the chunks (in order, without gaps, `size` bytes in all) into one object, `name`: the
 * job's tarball itself, stored under its fresh name, so that it goes whole when its job ends.
 */
async function assemble(
  deps: ToolApiDeps,
  tool: ToolRecord,
  uploadId: string,
  size: number,
  name: string,
): Promise<string> {
  const parts = (await deps.blobs.list(partPrefix(tool.name, uploadId)))
    .map((o) => ({ name: o.name, offset: Number(o.name.slice(-12)), size: o.size }))
    .sort((a, b) => a.offset - b.offset);
  let expected = 0;
  for (const part of parts) {
    if (part.offset !== expected) break;
    expected += part.size;
  }
  if (parts.length === 0 || expected !== size) {
    throw new HubError('BAD_REQUEST', `Upload ${uploadId} holds ${expected} contiguous bytes, not ${size}`);
  }
  const blobs = deps.blobs;
  async function* joined() {
    for (const part of parts) {
      const found = await blobs.get(part.name);
      if (!found) throw new HubError('BAD_REQUEST', `Upload ${uploadId} lost a chunk; upload it again`);
      for await (const chunk of found.stream) yield chunk as Buffer;
    }
  }
  await blobs.put(name, Readable.from(joined()), { maxBytes: MAX_UPLOAD_BYTES, fresh: true });
  for (const part of parts) await blobs.delete(part.name).catch(() => undefined);
  return name;
}

async function submit(deps: ToolApiDeps, tool: ToolRecord, payload: unknown): Promise<BuildAccepted> {
  const request = decode(ToolSubmitRequest, payload, 'submit request');
  assertNoForbiddenKeys(request.manifest, 'manifest');
  assertNoForbiddenKeys(request.credentials ?? {}, 'credentials');
  const callbackUrl = request.callback_url ?? tool.callbackUrl ?? undefined;
  if (callbackUrl !== undefined) await checkCallbackUrl(callbackUrl, deps.callbackPolicy);
  const apiToken = tool.accountId !== null ? await deps.tools.accountToken(tool.accountId) : undefined;
  if (tool.accountId !== null && apiToken === undefined) {
    throw new HubError('AUTH_INVALID', `The account of tool ${tool.name} does not exist any more`);
  }
  const submission = new Submission(deps, {
    via: 'nats',
    apiToken,
    idempotencyKey: request.idempotency_key,
    maxUploadBytes: MAX_UPLOAD_BYTES,
    tool: tool.name,
    callbackUrl,
  });
  const objectName = await assemble(deps, tool, request.upload_id, request.size, tarballObjectName(submission.jobId));
  try {
    submission.setManifest(JSON.stringify(request.manifest));
    submission.setCredentials(JSON.stringify(request.credentials ?? {}));
    if (tool.licenseKey !== null) submission.setLicenseKey(tool.licenseKey);
    await submission.adoptUpload(objectName);
    return await submission.finish();
  } catch (err) {
    await submission.abandon();
    await deps.blobs.delete(objectName).catch(() => undefined);
    throw err;
  }
}

const EVENTS_MAX_PER_REPLY = 256;
const FINISHED: Record<string, ToolJobOutcome | undefined> = {
  completed: 'succeeded',
  failed: 'failed',
  cancelled: 'cancelled',
  expired: 'expired',
};
const EVENTS_MAX_REPLY_BYTES = 256 * 1024;
const textDecoder = new TextDecoder();

/**
 * The job's events after `after_seq` (from the start when absent), as the CLI receives them;
 * waits up to `wait_ms` for the first one when none is there yet. `done` is the job's outcome once
 * its last event has been returned.
 */
async function events(deps: ToolApiDeps, caller: Caller, payload: unknown): Promise<ToolEventsReply> {
  const request = decode(ToolEventsRequest, payload, 'events request');
  const job = await jobDetail(deps.db, caller, request.job_id);
  if (job === undefined) throw notFound();
  const consumer = await orderedConsumer(jetstream(deps.nc), topologyNames(deps.subjectPrefix).eventsStream, {
    filter_subjects: deps.subjects.jobEvents(request.job_id).replace(/\.events$/, '.*'),
    ...(request.after_seq === undefined
      ? { deliver_policy: DeliverPolicy.All }
      : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: request.after_seq + 1 }),
  });
  const out: ToolEventsReply['events'] = [];
  let done: ToolEventsReply['done'] = null;
  let next = request.after_seq ?? 0;
  let bytes = 0;
  const batch = await consumer.fetch({
    max_messages: EVENTS_MAX_PER_REPLY,
    expires: Math.max(1_000, request.wait_ms ?? 1_000),
  });
  try {
    for await (const m of batch) {
      next = m.seq;
      if (m.subject === deps.subjects.jobDone(request.job_id)) {
        const outcome = m.json<{ outcome?: unknown }>().outcome;
        done = TOOL_JOB_OUTCOMES.find((o) => o === outcome) ?? 'finished';
        break;
      }
      // A batched entry's messages all go in this reply: `next_seq` resumes after the whole entry.
      for (const frame of splitEvents(m.data, m.headers?.get(EVENT_BATCH_HEADER))) {
        out.push({ seq: m.seq, message: JSON.parse(textDecoder.decode(frame)) as Record<string, unknown> });
      }
      bytes += m.data.length;
      if (bytes > EVENTS_MAX_REPLY_BYTES || m.info.pending === 0) break;
    }
  } finally {
    await endOrderedRead(deps.nc, consumer, batch);
  }
  // A finished job whose log aged out (or never had a `done`): its outcome from the record.
  if (done === null && out.length === 0 && job.finished_at !== null && FINISHED[job.state] !== undefined) {
    done = FINISHED[job.state] ?? null;
  }
  return { events: out, next_seq: next, done };
}

/** One chunk (at most TOOL_CHUNK_MAX_BYTES) of a final artifact, with the artifact's SHA-256. */
async function artifact(deps: ToolApiDeps, caller: Caller, payload: unknown): Promise<ToolArtifactChunk> {
  const request = decode(ToolArtifactRequest, payload, 'artifact request');
  if ((await jobDetail(deps.db, caller, request.job_id)) === undefined) throw notFound();
  const [rows] = await deps.db.query<RowDataPacket[]>(
    `SELECT object_name, name, target, size, sha256 FROM artifacts
      WHERE job_id = ? AND name = ? AND held = FALSE ORDER BY attempt DESC LIMIT 1`,
    [request.job_id, request.name],
  );
  const row = rows[0];
  if (!row) throw new HubError('ARTIFACT_NOT_FOUND', `No artifact ${request.name} for this job`);
  const size = Number(row['size']);
  const offset = request.offset ?? 0;
  if (offset > size) throw new HubError('RANGE_NOT_SATISFIABLE', `offset is past the end (${size} bytes)`);
  const found = await deps.blobs.get(String(row['object_name']));
  if (!found) throw new HubError('ARTIFACT_NOT_FOUND', 'The artifact has expired');
  const wanted = Math.min(TOOL_CHUNK_MAX_BYTES, size - offset);
  const parts: Buffer[] = [];
  let seen = 0;
  let taken = 0;
  for await (const raw of found.stream) {
    const chunk = raw as Buffer;
    const start = Math.max(0, offset - seen);
    seen += chunk.length;
    if (seen <= offset) continue;
    const piece = chunk.subarray(start, start + (wanted - taken));
    parts.push(piece);
    taken += piece.length;
    if (taken >= wanted) break;
  }
  found.stream.destroy();
  const data = Buffer.concat(parts);
  return {
    name: String(row['name']),
    target: String(row['target']),
    size,
    sha256: String(row['sha256']),
    offset,
    data: data.toString('base64'),
    chunk_sha256: createHash('sha256').update(data).digest('hex'),
    eof: offset + data.length >= size,
  };
}

async function serve(deps: ToolApiDeps, subject: string, payload: unknown): Promise<unknown> {
  const [, , name = '', op = ''] = subject.split('.').slice(-4);
  const tool = await deps.tools.get(name);
  // A removed tool whose key the nats-server still knows: as if it never existed.
  if (!tool) throw new HubError('AUTH_INVALID', `No tool identity ${name}`);
  const caller: Caller = { kind: 'tool', tool: tool.name };
  switch (op) {
    case 'upload':
      return upload(deps, tool, payload);
    case 'submit':
      return submit(deps, tool, payload);
    case 'status': {
      const { job_id } = decode(ToolJobRequest, payload, 'status request');
      const detail = await readJob(deps, caller, job_id, deps.publicUrl);
      if (detail === undefined) throw notFound();
      return detail;
    }
    case 'list': {
      const request = decode(ToolListRequest, payload, 'list request');
      return listJobs(deps.db, caller, {
        ...(request.state !== undefined ? { state: request.state } : {}),
        ...(request.cursor !== undefined ? { cursor: request.cursor } : {}),
        ...(request.limit !== undefined ? { limit: String(request.limit) } : {}),
      });
    }
    case 'cancel': {
      const { job_id } = decode(ToolJobRequest, payload, 'cancel request');
      if ((await jobDetail(deps.db, caller, job_id)) === undefined) throw notFound();
      // Ownership is checked here (the tool's own job); the scheduler acts as for the admin.
      return cancelBuild(deps, job_id, { kind: 'admin' });
    }
    case 'events':
      return events(deps, caller, payload);
    case 'artifact':
      return artifact(deps, caller, payload);
    default:
      throw new HubError('NOT_FOUND', `Unknown tool operation ${op}`);
  }
}

/** Serve `<p>.tools.*.*` in the ingest queue group. */
export function serveToolApi(deps: ToolApiDeps): Subscription {
  return deps.nc.subscribe(deps.subjects.toolAll, {
    queue: `${deps.subjects.prefix}.ingest`,
    callback: (err, msg) => {
      if (err) return deps.log.error({ err }, 'tool API subscription failed');
      void respond(msg, (payload) => serve(deps, msg.subject, payload), deps.log, msg.subject);
    },
  });
}

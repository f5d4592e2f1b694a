/**
 * The transfer routes: workers fetch their input tarball and upload artifacts, CLIs download
 * artifacts. All streamed between HTTP and the Object Store, never whole in memory. Workers and
 * the CLI get base64 text as the original served it; new clients ask for raw bytes with
 * `Accept: application/octet-stream` (and may resume downloads with HTTP Range).
 */
import { PassThrough, pipeline, Readable, type Transform } from 'node:stream';
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import {
  ARTIFACT_PREFIX,
  HubError,
  artifactNameProblem,
  authorizeTransferEndpoint,
  claimDownloadEndpoint,
  finishDownloadEndpoint,
  registerArtifactEndpoint,
  type AuthorizeTransferReply,
  type Subjects,
} from '@perry-hub/contracts';
import { base64Decoder, base64Encoder, call, type BlobStore, type HubMetrics, type Logger } from '@perry-hub/runtime';
import type { NatsConnection } from '@nats-io/nats-core';
import { parseRange, sliceBytes } from './range.js';
import { bodySignal } from '../abuse/slow-body.js';
import { notAGuess } from '../abuse/hooks.js';

export interface TransferDeps {
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  blobs: BlobStore;
  maxArtifactBytes: number;
  metrics: HubMetrics;
  /** Grants kept from tarball downloads for the same workers' uploads (absent: each asks). */
  grants?: TransferGrants;
}

const ID = { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } as const;
const forbidden = () => new HubError('FORBIDDEN', 'Invalid job token');
/**
 * A read, safe to repeat: ride out a scheduler instance dying mid-request, a nats-server
 * restarting, or no scheduler reachable while one moves off a NATS node cut off from its cluster
 * (20 s in all, whether the scheduler is silent or absent), since the Rust workers fail the build
 * on an error.
 */
const AUTHORIZE = { timeoutMs: 1_500, attempts: 10, forMs: 20_000 };
/** The same for opening the tarball in the Object Store (its bytes are not retried once sent). */
const OPEN_RETRY_MS = 15_000;

/** `blobs.get` that rides out a NATS reconnect: only errors of the bus itself are retried. */
async function openBlob(blobs: BlobStore, name: string): ReturnType<BlobStore['get']> {
  const deadline = Date.now() + OPEN_RETRY_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      return await blobs.get(name);
    } catch (err) {
      if (err instanceof HubError || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, 100 * attempt)));
    }
  }
}

type Grant = AuthorizeTransferReply;

/**
 * A worker's job token checked by the scheduler. A job that is not running any more (re-queued,
 * finished) answers as the original did once its token was gone, 403; the worker holds a stale
 * token, which is no guess at a credential and is not counted against its address.
 */
async function authorize(
  deps: TransferDeps,
  request: FastifyRequest,
  jobId: string,
  purpose: 'tarball' | 'artifact',
): Promise<Grant> {
  const token = bearer(request);
  try {
    const grant = await call(deps.nc, deps.subjects, authorizeTransferEndpoint, { jobId, token, purpose }, AUTHORIZE);
    deps.grants?.remember(jobId, token, grant);
    return grant;
  } catch (err) {
    deps.grants?.forget(jobId);
    if (err instanceof HubError && err.code === 'JOB_NOT_RUNNING') throw notAGuess(forbidden());
    throw err;
  }
}

/**
 * What the scheduler granted a worker's token for its tarball, kept for that worker's uploads:
 * an upload with the same token is not authorized again, and its artifact is recorded only while
 * that attempt of the job still runs (register-artifact's `whileRunning`, checked against the
 * builds row in the statement that records it). So a worker whose job was released, reassigned
 * or ended since is refused as before (once its upload has been read, not before). Per
 * instance: an upload reaching another instance asks the scheduler.
 */
export class TransferGrants {
  readonly #byJob = new Map<string, { hash: Buffer; grant: Grant }>();

  constructor(private readonly maxJobs = 10_000) {}

  remember(jobId: string, token: string, grant: Grant): void {
    // Jobs end without telling this instance: a full map starts afresh (the next uploads ask).
    if (this.#byJob.size >= this.maxJobs && !this.#byJob.has(jobId)) this.#byJob.clear();
    this.#byJob.set(jobId, { hash: digest(token), grant });
  }

  /** The grant given to exactly this token for this job, if this instance holds one. */
  find(jobId: string, token: string): Grant | undefined {
    const known = this.#byJob.get(jobId);
    return known && timingSafeEqual(known.hash, digest(token)) ? known.grant : undefined;
  }

  forget(jobId: string): void {
    this.#byJob.delete(jobId);
  }
}

const digest = (token: string) => createHash('sha256').update(token).digest();

function bearer(request: FastifyRequest): string {
  const header = request.headers.authorization;
  // Without a Bearer credential there is nothing guessed: not counted (abuse/hooks.ts).
  if (typeof header !== 'string' || !header.startsWith('Bearer ')) throw notAGuess(forbidden());
  return header.slice('Bearer '.length).trim();
}

const wantsRaw = (request: FastifyRequest) => /application\/octet-stream/i.test(request.headers.accept ?? '');
const base64Length = (bytes: number) => 4 * Math.ceil(bytes / 3);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * `x-artifact-name`, which CLIs are told in `artifact_ready` and the old CLI writes to
 * `<output>/<name>`: a plain file name or a 400. Header values arrive as latin1; workers mean
 * UTF-8.
 */
export function artifactName(header: string): string {
  let name: string;
  try {
    name = utf8.decode(Buffer.from(header, 'latin1'));
  } catch {
    throw new HubError('BAD_REQUEST', 'Invalid x-artifact-name: not UTF-8');
  }
  const problem = artifactNameProblem(name);
  if (problem !== undefined) {
    throw new HubError('BAD_REQUEST', `Invalid x-artifact-name: the name ${problem}; send a plain file name`);
  }
  return name;
}
const hex = (digest: string) => Buffer.from(digest.replace(/^SHA-256=/, ''), 'base64url').toString('hex');

/** `pipeline` that hands back its last stage, so a failing source fails the response too. */
function chain(source: Readable, ...through: Transform[]): Readable {
  if (through.length === 0) return source;
  return (pipeline as (...s: unknown[]) => Readable)(source, ...through, () => undefined);
}

export function transferRoutes(deps: TransferDeps): FastifyPluginAsync {
  return async (app) => {
    // Encapsulated: these parsers hand the body stream to the upload route only. Through a
    // PassThrough, so that failing the upload (a slow body, a full store) does not destroy the
    // request, and the worker still gets its answer.
    app.addContentTypeParser(['text/plain', 'application/octet-stream'], (_req, payload, done) =>
      done(null, payload.pipe(new PassThrough())),
    );

    app.get<{ Params: { jobId: string } }>(
      '/api/v1/tarball/:jobId',
      { schema: { params: { type: 'object', properties: { jobId: ID }, required: ['jobId'] } } },
      async (request, reply) => {
        const { jobId } = request.params;
        const auth = await authorize(deps, request, jobId, 'tarball');
        const found = await openBlob(deps.blobs, auth.tarballRef);
        if (!found) throw new HubError('NOT_FOUND', `Tarball not found for job: ${jobId}`);
        return sendBytes(reply, found.stream, found.info.size, wantsRaw(request));
      },
    );

    app.post<{ Params: { jobId: string }; Body: Readable }>(
      '/api/v1/artifact/upload/:jobId',
      { schema: { params: { type: 'object', properties: { jobId: ID }, required: ['jobId'] } } },
      async (request) => {
        const { jobId } = request.params;
        const granted = deps.grants?.find(jobId, bearer(request));
        const auth = granted ?? (await authorize(deps, request, jobId, 'artifact'));
        const raw = /application\/octet-stream/i.test(request.headers['content-type'] ?? '');
        const header = (name: string) => {
          const v = request.headers[name];
          return typeof v === 'string' ? v.trim() : '';
        };
        const name = artifactName(header('x-artifact-name') || 'artifact');
        const claimed = header('x-artifact-sha256').toLowerCase();
        const sent = header('x-artifact-target');
        if (sent.length > 64 || !/^[A-Za-z0-9._-]*$/.test(sent)) {
          throw new HubError('BAD_REQUEST', 'Invalid x-artifact-target: at most 64 of A-Z a-z 0-9 . _ -');
        }
        // A plugin build is single-stage: what a cross-compiling worker calls an intermediate
        // (`windows-precompiled`) is that target's final binary, never held for a sign stage.
        const target = auth.buildType === 'plugin' ? sent.replace(/-precompiled$/, '') : sent;
        const blobs = deps.blobs;
        const objectName = `${ARTIFACT_PREFIX}${jobId}/${randomUUID()}`;
        const signal = bodySignal(request);
        const info = await blobs.put(objectName, request.body, {
          maxBytes: deps.maxArtifactBytes,
          through: raw ? [] : [base64Decoder()],
          ...(signal ? { signal } : {}),
          fresh: true,
        });
        const sha256 = hex(info.digest);
        if (info.size === 0 || (claimed !== '' && claimed !== sha256)) {
          await blobs.delete(objectName);
          throw new HubError(
            'BAD_REQUEST',
            info.size === 0
              ? 'Missing base64 artifact data in body'
              : 'x-artifact-sha256 does not match the uploaded data',
          );
        }
        // An instance killed while recording it leaves no answer: asked again, marked as a retry,
        // so the artifact is recorded and announced once; as long as the authorization waits.
        const register = (whileRunning: boolean) =>
          call(
            deps.nc,
            deps.subjects,
            registerArtifactEndpoint,
            {
              jobId,
              attempt: auth.attempt,
              artifact: { objectName, name, size: info.size, sha256, target },
              ...(whileRunning ? { whileRunning: true as const } : {}),
            },
            { attempts: 3, forMs: AUTHORIZE.forMs, again: (request) => ({ ...request, retried: true }) },
          );
        const notRunning = (err: unknown) => err instanceof HubError && err.code === 'JOB_NOT_RUNNING';
        // Refused: the stored upload goes with the refusal.
        const refuse = async (err: unknown) => {
          await blobs.delete(objectName).catch(() => false);
          return err;
        };
        let registered: Awaited<ReturnType<typeof register>>;
        try {
          registered = await register(granted !== undefined);
        } catch (err) {
          if (!notRunning(err)) throw err;
          // Its attempt is no longer the job's (assigned again since it was authorized).
          if (!granted) throw await refuse(err);
          // Not running by its builds row: the scheduler decides, as for an upload without a
          // grant (a build released while its worker claims it back is still allowed).
          deps.grants?.forget(jobId);
          try {
            const now = await authorize(deps, request, jobId, 'artifact');
            if (now.attempt !== auth.attempt) throw notAGuess(forbidden());
          } catch (refused) {
            throw await refuse(refused);
          }
          registered = await register(false).catch(async (late: unknown) => {
            throw notRunning(late) ? await refuse(late) : late;
          });
        }
        deps.log.info(
          { jobId, attempt: auth.attempt, artifact: name, bytes: info.size, sha256, ...(target ? { target } : {}) },
          'artifact stored',
        );
        deps.metrics.artifactBytes.inc({ direction: 'in' }, info.size);
        return { token: registered.token, download_url: registered.download_url, size: registered.size };
      },
    );

    app.get<{ Params: { token: string } }>(
      '/api/v1/dl/:token',
      { schema: { params: { type: 'object', properties: { token: ID }, required: ['token'] } } },
      async (request, reply) => {
        const { token } = request.params;
        const raw = wantsRaw(request);
        const rangeHeader = raw ? request.headers.range : undefined;
        const meta = await call(deps.nc, deps.subjects, claimDownloadEndpoint, {
          token,
          resume: rangeHeader !== undefined,
        });
        // The claim marked the token as in transfer. 'finish' of an answer carrying the artifact to
        // its last byte: that byte has left the process, and the token is spent. Anything else
        // (cut, failed, refused, or only part of the artifact asked for) releases it at once.
        let spends: { nuid: string } | undefined;
        const finish = (step: 'sent' | 'released') =>
          call(deps.nc, deps.subjects, finishDownloadEndpoint, {
            token,
            step,
            ...(step === 'sent' && spends ? { objectName: meta.objectName, objectNuid: spends.nuid } : {}),
          }).catch((err: unknown) => deps.log.warn({ err, token, step }, 'could not record the end of a download'));
        reply.raw.once('finish', () => {
          if (spends) void finish('sent');
        });
        reply.raw.once('close', () => {
          if (!(spends && reply.raw.writableFinished)) void finish('released');
        });
        const range = rangeHeader === undefined ? null : parseRange(rangeHeader, meta.size);
        reply.header('content-disposition', `attachment; filename="${meta.name.replace(/[^A-Za-z0-9._-]/g, '_')}"`);
        if (raw) reply.header('accept-ranges', 'bytes');
        if (range) reply.status(206).header('content-range', `bytes ${range.start}-${range.end}/${meta.size}`);
        const length = range ? range.end - range.start + 1 : meta.size;
        // A HEAD (a link checker, `curl -I`) is answered with the GET's headers; it reads no
        // bytes and spends nothing.
        if (request.method === 'HEAD') return sendBytes(reply, Readable.from([]), length, raw);
        const found = await deps.blobs.get(meta.objectName);
        if (!found) throw new HubError('ARTIFACT_NOT_FOUND', 'Artifact not found or expired');
        if (range === null || range.end === meta.size - 1) spends = { nuid: found.info.nuid };
        // Counted once the whole answer left (a cut download counts nothing).
        reply.raw.once('finish', () => deps.metrics.artifactBytes.inc({ direction: 'out' }, length));
        const body = range ? chain(found.stream, sliceBytes(range.start, range.end)) : found.stream;
        return sendBytes(reply, body, length, raw);
      },
    );
  };
}

function sendBytes(reply: FastifyReply, stream: Readable, size: number, raw: boolean): FastifyReply {
  if (raw) {
    return reply.header('content-type', 'application/octet-stream').header('content-length', size).send(stream);
  }
  return reply
    .header('content-type', 'text/plain')
    .header('content-length', base64Length(size))
    .send(chain(stream, base64Encoder()));
}

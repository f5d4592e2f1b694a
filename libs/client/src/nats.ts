/**
 * A tool's client of the hub over NATS (`<p>.tools.<name>.<op>`, contracts messages/tools.ts):
 * plain request/reply on a connection the caller opened with the tool's NKEY seed and inbox
 * prefix (see `toolConnectOptions`). The tarball travels in bounded chunks; artifacts come back
 * in chunks and are checked against their SHA-256.
 */

import type { NatsConnection } from '@nats-io/nats-core';
import {
  TOOL_CHUNK_MAX_BYTES,
  natsInboxPrefix,
  subjects as makeSubjects,
  type BuildAccepted,
  type JobDetail,
  type JobListResponse,
  type RpcReply,
  type ToolArtifactChunk,
  type ToolEventsReply,
  type ToolOp,
  type ToolUploadReply,
} from '@perry-hub/contracts';
import { HubClientError, sha256Hex, type Submit, type JobEvent, type JobOutcome } from './common.js';

export interface ToolClientOptions {
  /** The tool's name (its NATS user is `tool-<name>`). */
  readonly tool: string;
  /** The hub's subject prefix (PERRY_HUB_SUBJECT_PREFIX), default `perry`. */
  readonly prefix?: string;
  /** Per request (default 30 s). */
  readonly timeoutMs?: number;
  /** Upload chunk size (at most, and default, TOOL_CHUNK_MAX_BYTES). */
  readonly chunkBytes?: number;
}

/** What `connect()` needs besides the server and the authenticator: the tool's private inbox. */
export function toolConnectOptions(tool: string, prefix = 'perry'): { inboxPrefix: string } {
  return { inboxPrefix: natsInboxPrefix(prefix, { tool }) };
}

export interface EventsOptions {
  /** Continue after this stream sequence (a previous event's `seq`); default: from the start. */
  readonly afterSeq?: number;
  /** How long each poll waits for news (default 10 s, at most 20 s). */
  readonly pollMs?: number;
  readonly signal?: AbortSignal;
}

export class ToolClient {
  readonly #subjects;
  readonly #timeoutMs: number;
  readonly #chunkBytes: number;

  constructor(
    private readonly nc: NatsConnection,
    private readonly options: ToolClientOptions,
  ) {
    this.#subjects = makeSubjects(options.prefix ?? 'perry');
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#chunkBytes = Math.min(options.chunkBytes ?? TOOL_CHUNK_MAX_BYTES, TOOL_CHUNK_MAX_BYTES);
  }

  async request<T>(op: ToolOp, body: unknown): Promise<T> {
    const msg = await this.nc.request(this.#subjects.tool(this.options.tool, op), JSON.stringify(body), {
      timeout: this.#timeoutMs,
    });
    const reply = msg.json<RpcReply>();
    if (reply.ok) return reply.result as T;
    throw new HubClientError(reply.error.code, reply.error.message);
  }

  /** Upload a gzip-compressed tarball in chunks; returns its upload id. A chunk is retried once. */
  async upload(tarball: Buffer): Promise<string> {
    let uploadId: string | undefined;
    for (let offset = 0; offset < tarball.length; offset += this.#chunkBytes) {
      const data = tarball.subarray(offset, offset + this.#chunkBytes).toString('base64');
      const send = () =>
        this.request<ToolUploadReply>('upload', { ...(uploadId ? { upload_id: uploadId } : {}), offset, data });
      const reply = await send().catch((err: unknown) => {
        if (err instanceof HubClientError || uploadId === undefined) throw err;
        return send();
      });
      uploadId = reply.upload_id;
    }
    if (uploadId === undefined) throw new HubClientError('BAD_REQUEST', 'The tarball is empty');
    return uploadId;
  }

  async submit(submit: Submit): Promise<BuildAccepted> {
    const uploadId = await this.upload(submit.tarball);
    return this.request<BuildAccepted>('submit', {
      manifest: submit.manifest,
      ...(submit.credentials ? { credentials: submit.credentials } : {}),
      upload_id: uploadId,
      size: submit.tarball.length,
      ...(submit.idempotencyKey ? { idempotency_key: submit.idempotencyKey } : {}),
      ...(submit.callbackUrl ? { callback_url: submit.callbackUrl } : {}),
    });
  }

  /** The job as `GET /api/v1/jobs/:id` answers it, its queue `position` included. */
  status(jobId: string): Promise<JobDetail> {
    return this.request('status', { job_id: jobId });
  }

  list(query: { state?: string; cursor?: string; limit?: number } = {}): Promise<JobListResponse> {
    return this.request('list', query);
  }

  cancel(jobId: string): Promise<{ job_id: string; cancelled: true }> {
    return this.request('cancel', { job_id: jobId });
  }

  /**
   * The job's events, replayed from the start (or after `afterSeq`) and then live, exactly the
   * messages the CLI receives; ends after the job's last event (its outcome is `done`).
   */
  async *events(jobId: string, options: EventsOptions = {}): AsyncGenerator<JobEvent, JobOutcome> {
    let after = options.afterSeq;
    for (;;) {
      if (options.signal?.aborted) throw options.signal.reason;
      const page = await this.request<ToolEventsReply>('events', {
        job_id: jobId,
        ...(after !== undefined ? { after_seq: after } : {}),
        wait_ms: Math.min(options.pollMs ?? 10_000, 20_000),
      });
      for (const e of page.events) yield e;
      after = page.next_seq;
      if (page.done !== null) return page.done;
    }
  }

  /** Follow the job to its end: its outcome and every event. */
  async wait(jobId: string, options: EventsOptions = {}): Promise<{ outcome: JobOutcome; events: JobEvent[] }> {
    const events: JobEvent[] = [];
    const it = this.events(jobId, options);
    for (;;) {
      const next = await it.next();
      if (next.done) return { outcome: next.value, events };
      events.push(next.value);
    }
  }

  /**
   * An artifact's bytes, fetched in chunks and checked against its SHA-256; `resumeFrom` holds
   * bytes already fetched (they are kept and checked as part of the whole).
   */
  async download(jobId: string, name: string, resumeFrom: Buffer = Buffer.alloc(0)): Promise<Buffer> {
    const parts: Buffer[] = [resumeFrom];
    let offset = resumeFrom.length;
    for (;;) {
      const chunk = await this.request<ToolArtifactChunk>('artifact', { job_id: jobId, name, offset });
      const data = Buffer.from(chunk.data, 'base64');
      if (sha256Hex(data) !== chunk.chunk_sha256) throw new HubClientError('CHECKSUM', `chunk at ${offset} corrupted`);
      parts.push(data);
      offset += data.length;
      if (chunk.eof) {
        const whole = Buffer.concat(parts);
        if (sha256Hex(whole) !== chunk.sha256) {
          throw new HubClientError('CHECKSUM', `${name}: SHA-256 does not match the hub's ${chunk.sha256}`);
        }
        return whole;
      }
      if (data.length === 0) throw new HubClientError('BAD_REPLY', 'an empty chunk before the end');
    }
  }
}

/**
 * The hub's HTTP API for tools that use it instead of NATS: submit (multipart with a binary
 * `tarball` part and an optional `callback_url`), job status, cancel, and the raw-bytes download
 * with Range (resumable), checked against the announced SHA-256. Authorized by the license key or
 * API token that submitted the job (`Authorization: Bearer`).
 */
import type { BuildAccepted, JobDetail, JobListResponse } from '@perry-hub/contracts';
import { answerError, HubClientError, sha256Hex, type Submit } from './common.js';
import { jobEventStream, type SseEvent } from './sse.js';

const API_TOKEN = /^[0-9a-f]{64}$/;

export interface HttpClientOptions {
  /** The hub's HTTP origin, e.g. `https://hub.perryts.com`. */
  readonly server: string;
  /** A license key or an account's API token. */
  readonly credential: string;
}

async function answer<T>(res: Response, what: string): Promise<T> {
  const text = await res.text();
  if (!res.ok) throw answerError(res.status, text, what);
  return JSON.parse(text) as T;
}

export class HttpClient {
  readonly #server: string;
  constructor(private readonly options: HttpClientOptions) {
    this.#server = options.server.replace(/\/+$/, '');
  }

  get #auth() {
    return { authorization: `Bearer ${this.options.credential}` };
  }

  async submit(submit: Submit): Promise<BuildAccepted> {
    const form = new FormData();
    form.append('manifest', JSON.stringify(submit.manifest));
    form.append('credentials', JSON.stringify(submit.credentials ?? {}));
    if (submit.callbackUrl) form.append('callback_url', submit.callbackUrl);
    // The build route takes an API token as Bearer, a license key as a part (as the CLI sends it).
    const isToken = API_TOKEN.test(this.options.credential);
    if (!isToken) form.append('license_key', this.options.credential);
    form.append('tarball', new Blob([new Uint8Array(submit.tarball)]), 'project.tar.gz');
    const res = await fetch(`${this.#server}/api/v1/build`, {
      method: 'POST',
      headers: {
        ...(isToken ? this.#auth : {}),
        ...(submit.idempotencyKey ? { 'idempotency-key': submit.idempotencyKey } : {}),
      },
      body: form,
    });
    return answer<BuildAccepted>(res, 'submit');
  }

  async status(jobId: string): Promise<JobDetail> {
    const res = await fetch(`${this.#server}/api/v1/jobs/${encodeURIComponent(jobId)}`, { headers: this.#auth });
    return answer<JobDetail>(res, 'status');
  }

  /** The caller's jobs, newest first (`GET /api/v1/jobs`). */
  async list(query: { state?: string; cursor?: string; limit?: number } = {}): Promise<JobListResponse> {
    const url = new URL(`${this.#server}/api/v1/jobs`);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    return answer<JobListResponse>(await fetch(url, { headers: this.#auth }), 'list');
  }

  /** The job's events as the CLI receives them: replayed, then live, until the job ends. */
  events(jobId: string, lastEventId?: string): AsyncGenerator<SseEvent, void> {
    return jobEventStream(this.#server, jobId, this.options.credential, {
      follow: true,
      ...(lastEventId !== undefined ? { lastEventId } : {}),
    });
  }

  /** Follow the job to its end, then its status. */
  async wait(jobId: string): Promise<JobDetail> {
    for await (const _event of this.events(jobId)) {
      // the history and the live events until the hub closes the stream at the job's end
    }
    return this.status(jobId);
  }

  async cancel(jobId: string): Promise<{ job_id: string; cancelled: true }> {
    const res = await fetch(`${this.#server}/api/v1/jobs/${encodeURIComponent(jobId)}/cancel`, {
      method: 'POST',
      headers: this.#auth,
    });
    return answer(res, 'cancel');
  }

  /**
   * An artifact by its download URL (`artifact_ready.download_url`) as raw bytes; `resumeFrom`
   * holds bytes already fetched, continued with a Range request. Checked against `sha256`.
   */
  async download(url: string, sha256: string, resumeFrom: Buffer = Buffer.alloc(0)): Promise<Buffer> {
    const res = await fetch(url, {
      headers: {
        accept: 'application/octet-stream',
        ...(resumeFrom.length > 0 ? { range: `bytes=${resumeFrom.length}-` } : {}),
      },
    });
    if (!res.ok) await answer(res, 'download');
    const rest = Buffer.from(await res.arrayBuffer());
    const whole = res.status === 206 ? Buffer.concat([resumeFrom, rest]) : rest;
    if (sha256Hex(whole) !== sha256) throw new HubClientError('CHECKSUM', 'the download does not match its SHA-256');
    return whole;
  }
}

/**
 * Sending queued callbacks (callback_deliveries), at least once and in order per job: a delivery
 * is due when its time came and every earlier one of its job is delivered or given up. Each
 * instance claims a delivery (`lease_until`) before sending it, so two ingest instances do not
 * send it at once, and a claim of an instance that died lapses. A 2xx answer delivers; any other
 * answer, a timeout or a network error is retried after base * 2^(attempt-1) (capped), the same
 * `webhook-id` every time, until the attempts are used up. An address the SSRF guard refuses at
 * connect time is recorded as failed at once. Nothing ticks while nothing is queued: one timer,
 * for the earliest due delivery.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { useAgent } from 'request-filtering-agent';
import type { Pool, ResultSetHeader, RowDataPacket } from '@perry-hub/db';
import type { BlobStore, Logger } from '@perry-hub/runtime';
import type { CallbackPolicy } from '../tools/callback-url.js';
import { signBytes, signJson, type SignedHeaders } from './sign.js';

export interface DeliveryConfig {
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  timeoutMs: number;
}

export interface DeliveryDeps {
  db: Pool;
  blobs: BlobStore;
  log: Logger;
  policy: CallbackPolicy;
  config: DeliveryConfig;
  now?: () => number;
}

interface Due {
  id: string;
  jobId: string;
  kind: 'artifact' | 'event';
  url: string;
  tool: string | null;
  body: string | null;
  objectName: string | null;
  artifactName: string | null;
  target: string | null;
  size: number | null;
  sha256: string | null;
  attempts: number;
}

const BATCH = 16;

/** The wait before attempt `attempt + 1` (attempt counts the ones made). */
export function backoffMs(config: DeliveryConfig, attempt: number): number {
  return Math.min(config.backoffMaxMs, config.backoffBaseMs * 2 ** Math.max(0, attempt - 1));
}

class Refused extends Error {}

function post(
  url: string,
  headers: Record<string, string>,
  body: Buffer | Readable,
  policy: CallbackPolicy,
  timeoutMs: number,
) {
  return new Promise<number>((resolve, reject) => {
    const target = new URL(url);
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(
      target,
      {
        method: 'POST',
        headers,
        agent: useAgent(url, { allowIPAddressList: [...policy.allowedAddresses.entries], keepAlive: false }),
        timeout: timeoutMs,
      },
      (res: IncomingMessage) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => reject(/is not allowed/.test(err.message) ? new Refused(err.message) : err));
    if (Buffer.isBuffer(body)) req.end(body);
    else body.on('error', (err) => req.destroy(err)).pipe(req);
  });
}

export class CallbackSender {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  readonly #now: () => number;

  constructor(private readonly deps: DeliveryDeps) {
    this.#now = deps.now ?? Date.now;
  }

  /** Look for due deliveries now (and then schedule the next look). */
  wake(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#running = this.#pass()
      .catch((err: unknown) => this.deps.log.warn({ err }, 'callback delivery pass failed'))
      .then(async () => {
        this.#running = undefined;
        if (this.#again) {
          this.#again = false;
          return this.wake();
        }
        await this.#schedule().catch((err: unknown) => this.deps.log.warn({ err }, 'callback schedule failed'));
      });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  async #schedule(): Promise<void> {
    if (this.#stopped) return;
    const [rows] = await this.deps.db.query<RowDataPacket[]>(
      `SELECT MIN(GREATEST(d.next_attempt_at, COALESCE(d.lease_until, 0))) AS at FROM callback_deliveries d
        WHERE d.state = 'pending' AND NOT EXISTS (SELECT 1 FROM callback_deliveries e
                                                   WHERE e.job_id = d.job_id AND e.seq < d.seq AND e.state = 'pending')`,
    );
    const at = rows[0]?.['at'];
    if (at === null || at === undefined) return;
    // At least a moment: a delivery another instance holds is not due before its claim lapses.
    const delay = Math.max(50, Math.min(Number(at) - this.#now() + 5, 2 ** 31 - 1));
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.wake(), delay);
  }

  async #pass(): Promise<void> {
    for (;;) {
      const now = this.#now();
      const [rows] = await this.deps.db.query<RowDataPacket[]>(
        `SELECT d.* FROM callback_deliveries d
          WHERE d.state = 'pending' AND d.next_attempt_at <= ? AND (d.lease_until IS NULL OR d.lease_until < ?)
            AND NOT EXISTS (SELECT 1 FROM callback_deliveries e
                             WHERE e.job_id = d.job_id AND e.seq < d.seq AND e.state = 'pending')
          ORDER BY d.next_attempt_at, d.seq LIMIT ?`,
        [now, now, BATCH],
      );
      if (rows.length === 0) return;
      await Promise.all(rows.map((r) => this.#attempt(toDue(r))));
      if (this.#stopped) return;
    }
  }

  async #attempt(d: Due): Promise<void> {
    const { db, config, log } = this.deps;
    const now = this.#now();
    const [claim] = await db.query<ResultSetHeader>(
      `UPDATE callback_deliveries SET lease_until = ?, attempts = attempts + 1
        WHERE id = ? AND state = 'pending' AND attempts = ? AND (lease_until IS NULL OR lease_until < ?)`,
      [now + config.timeoutMs * 2 + 1_000, d.id, d.attempts, now],
    );
    if (claim.affectedRows !== 1) return;
    const attempt = d.attempts + 1;
    let status: number | null = null;
    let error: string | null = null;
    let refused = false;
    try {
      status = await this.#send(d);
      if (status < 200 || status > 299) error = `answered ${status}`;
    } catch (err) {
      refused = err instanceof Refused;
      error = (err as Error).message.slice(0, 500);
    }
    if (error === null) {
      await db.query(
        `UPDATE callback_deliveries SET state = 'delivered', delivered_at = ?, last_status = ?, last_error = NULL,
           lease_until = NULL WHERE id = ?`,
        [this.#now(), status, d.id],
      );
      await this.#release(d);
      log.info({ jobId: d.jobId, webhookId: d.id, kind: d.kind, attempt }, 'callback delivered');
      return;
    }
    const giveUp = refused || attempt >= config.maxAttempts;
    await db.query(
      `UPDATE callback_deliveries SET state = ?, last_status = ?, last_error = ?, next_attempt_at = ?, lease_until = NULL
        WHERE id = ?`,
      [giveUp ? 'failed' : 'pending', status, error, this.#now() + backoffMs(config, attempt), d.id],
    );
    if (giveUp) await this.#release(d);
    log.warn(
      { jobId: d.jobId, webhookId: d.id, kind: d.kind, attempt, error, ...(giveUp ? { gaveUp: true } : {}) },
      'callback not delivered',
    );
  }

  async #send(d: Due): Promise<number> {
    const secret = await this.#secret(d);
    const at = new Date(this.#now());
    const policy = this.deps.policy;
    if (d.kind === 'event') {
      const body = d.body ?? '{}';
      const signed = signJson(secret, d.id, at, body);
      return post(
        d.url,
        { ...signed, 'content-type': 'application/json' },
        Buffer.from(body),
        policy,
        this.deps.config.timeoutMs,
      );
    }
    const found = d.objectName ? await this.deps.blobs.get(d.objectName) : null;
    if (!found) throw new Error('the artifact copy is gone');
    const chunks: Buffer[] = [];
    for await (const chunk of found.stream) chunks.push(chunk as Buffer);
    const bytes = Buffer.concat(chunks);
    const signed: SignedHeaders = signBytes(secret, d.id, at, bytes);
    return post(
      d.url,
      {
        ...signed,
        'content-type': 'application/octet-stream',
        'content-length': String(bytes.length),
        'x-perry-event': 'artifact',
        'x-perry-job-id': d.jobId,
        'x-perry-target': d.target ?? '',
        'x-perry-artifact-name': encodeURIComponent(d.artifactName ?? ''),
        'x-perry-artifact-size': String(d.size ?? bytes.length),
        'x-perry-artifact-sha256': d.sha256 ?? '',
      },
      bytes,
      policy,
      this.deps.config.timeoutMs,
    );
  }

  async #secret(d: Due): Promise<string> {
    const [rows] = await this.deps.db.query<RowDataPacket[]>('SELECT webhook_secret FROM tools WHERE name = ?', [
      d.tool,
    ]);
    const secret = rows[0]?.['webhook_secret'];
    if (typeof secret !== 'string') throw new Refused(`no tool identity ${String(d.tool)} to sign with`);
    return secret;
  }

  /** A delivery that is over no longer needs its copy of the artifact. */
  async #release(d: Due): Promise<void> {
    if (d.objectName) await this.deps.blobs.delete(d.objectName).catch(() => undefined);
  }
}

function toDue(r: RowDataPacket): Due {
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    id: String(r['id']),
    jobId: String(r['job_id']),
    kind: r['kind'] === 'artifact' ? 'artifact' : 'event',
    url: String(r['url']),
    tool: (r['tool'] as string | null) ?? null,
    body: (r['body'] as string | null) ?? null,
    objectName: (r['object_name'] as string | null) ?? null,
    artifactName: (r['artifact_name'] as string | null) ?? null,
    target: (r['target'] as string | null) ?? null,
    size: num(r['size']),
    sha256: (r['sha256'] as string | null) ?? null,
    attempts: Number(r['attempts']),
  };
}

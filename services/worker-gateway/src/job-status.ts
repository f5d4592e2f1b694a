/**
 * The scheduler's answer to "does this job exist, and where is it?", asked once per job however
 * many sockets subscribe to it at once: concurrent subscribers share one request (single flight)
 * and, for `PERRY_HUB_WS_JOB_STATUS_CACHE_MS`, later ones share its answer. A subscribe storm on
 * one job id therefore costs the scheduler a request per interval, not one per socket. Distinct
 * job ids are bounded too: at most MAX_IN_FLIGHT requests are outstanding, the rest wait.
 */
import type { JobStatusReply } from '@perry-hub/contracts';

const MAX_IN_FLIGHT = 16;
/** Past this many cached answers, expired ones are dropped (random ids must not grow the map). */
const PRUNE_AT = 1_000;

export class JobStatusLookup {
  readonly #ask: (jobId: string) => Promise<JobStatusReply>;
  readonly #cacheMs: number;
  readonly #inFlight = new Map<string, Promise<JobStatusReply>>();
  readonly #answers = new Map<string, { reply: JobStatusReply; at: number }>();
  readonly #waiting: (() => void)[] = [];
  #running = 0;

  constructor(ask: (jobId: string) => Promise<JobStatusReply>, cacheMs: number) {
    this.#ask = ask;
    this.#cacheMs = cacheMs;
  }

  /** Rejects as the request does (the caller decides what a failure means for its socket). */
  get(jobId: string, now = Date.now()): Promise<JobStatusReply> {
    const cached = this.#answers.get(jobId);
    if (cached && now - cached.at < this.#cacheMs) return Promise.resolve(cached.reply);
    const pending = this.#inFlight.get(jobId);
    if (pending) return pending;
    const request = this.#run(jobId).finally(() => this.#inFlight.delete(jobId));
    this.#inFlight.set(jobId, request);
    return request;
  }

  async #run(jobId: string): Promise<JobStatusReply> {
    if (this.#running >= MAX_IN_FLIGHT) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#running++;
    try {
      const reply = await this.#ask(jobId);
      if (this.#cacheMs > 0) this.#remember(jobId, reply);
      return reply;
    } finally {
      this.#running--;
      this.#waiting.shift()?.();
    }
  }

  #remember(jobId: string, reply: JobStatusReply): void {
    const now = Date.now();
    if (this.#answers.size >= PRUNE_AT) {
      for (const [id, entry] of this.#answers) if (now - entry.at >= this.#cacheMs) this.#answers.delete(id);
    }
    if (this.#answers.size < PRUNE_AT * 2) this.#answers.set(jobId, { reply, at: now });
  }
}

/**
 * Lightweight Linux workers and a CLI watcher, in the benchmark's process so that their clock is
 * the submitter's. The workers speak the Rust worker's bytes (test/support/rust-wire.ts) but do
 * no build: a job is completed the moment it arrives, unless the benchmark holds it (to stream
 * logs or upload artifacts on it).
 */
import { WebSocket } from 'ws';
import * as wire from '../../support/rust-wire.js';
import { WORKER_SECRET } from './stack.js';

export interface Assignment {
  readonly jobId: string;
  /** performance.now() when `job_assign` arrived. */
  readonly at: number;
  readonly authToken: string;
  readonly uploadUrl: string;
  readonly worker: BenchWorker;
}

export class BenchWorker {
  readonly ws: WebSocket;
  readonly #fleet: Fleet;

  constructor(fleet: Fleet, url: string, name: string, maxConcurrent: number) {
    this.#fleet = fleet;
    this.ws = new WebSocket(url, { perMessageDeflate: false });
    this.ws.on('open', () =>
      this.ws.send(wire.hello('linux', { name, secret: WORKER_SECRET, perryVersion: undefined, maxConcurrent })),
    );
    this.ws.on('message', (data: Buffer) => this.#onMessage(data));
    this.ws.on('error', () => undefined);
  }

  send(text: string): void {
    this.ws.send(text);
  }

  complete(jobId: string): void {
    this.ws.send(wire.complete('linux', jobId, true, 0.01, null, []));
  }

  #onMessage(data: Buffer): void {
    const at = performance.now();
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
    } catch {
      return; // like the Rust workers: what does not parse is ignored
    }
    if (m['type'] !== 'job_assign' || typeof m['job_id'] !== 'string') return;
    const assignment: Assignment = {
      jobId: m['job_id'],
      at,
      authToken: String(m['auth_token'] ?? ''),
      uploadUrl: String(m['artifact_upload_url'] ?? ''),
      worker: this,
    };
    this.#fleet.assigned(assignment);
  }
}

export class Fleet {
  readonly workers: BenchWorker[] = [];
  /** performance.now() of each job's `job_assign`, by job id. */
  readonly assignedAt = new Map<string, number>();
  /** How many of the next assignments to keep running instead of completing them. */
  holdNext = 0;
  readonly #waiting = new Map<string, (a: Assignment) => void>();
  readonly #held = new Map<string, Assignment>();

  constructor(url: string, count: number, maxConcurrent: number) {
    for (let i = 0; i < count; i++) this.workers.push(new BenchWorker(this, url, `bench-linux-${i}`, maxConcurrent));
  }

  assigned(a: Assignment): void {
    this.assignedAt.set(a.jobId, a.at);
    if (this.holdNext > 0) {
      this.holdNext--;
      this.#held.set(a.jobId, a);
    } else a.worker.complete(a.jobId);
    this.#waiting.get(a.jobId)?.(a);
    this.#waiting.delete(a.jobId);
  }

  /** Resolves with a held job's assignment once it arrives. */
  held(jobId: string): Promise<Assignment> {
    const known = this.#held.get(jobId);
    if (known) return Promise.resolve(known);
    return new Promise((resolve) => this.#waiting.set(jobId, resolve));
  }

  release(jobId: string): void {
    this.#held.get(jobId)?.worker.complete(jobId);
    this.#held.delete(jobId);
  }

  get open(): number {
    return this.workers.filter((w) => w.ws.readyState === WebSocket.OPEN).length;
  }

  close(): void {
    for (const w of this.workers) w.ws.terminate();
  }
}

/** A CLI watching one job (`subscribe` on `/ws`); resolves once the hub answered `job_created`. */
export function watchJob(url: string, jobId: string, onFrame: (text: string, at: number) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    let created = false;
    ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', job_id: jobId })));
    ws.on('message', (data: Buffer) => {
      const at = performance.now();
      const text = data.toString('utf8');
      if (!created && text.includes('"job_created"')) {
        created = true;
        resolve(ws);
      }
      onFrame(text, at);
    });
    ws.on('error', reject);
    ws.on('close', () => reject(new Error('CLI connection closed before job_created')));
  });
}

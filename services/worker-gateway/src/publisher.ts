/**
 * JetStream publishing for the event-log hot path. `js.publish` is a request per message, and
 * nats.js builds two Error objects (stack traces included) for every request in case it times
 * out: at a busy build's 5,000 log lines a second that alone ate a fifth of the gateway's CPU and
 * put the p99 of line-to-CLI latency in the hundreds of milliseconds. This is the same protocol
 * (publish to the stream's subject with a reply subject, get the PubAck there) with one reply
 * subscription, a map of pending acks and one timer for all timeouts.
 */
import { createInbox, headers, type Msg, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import { HubError } from '@perry-hub/contracts';
import { inboxPrefixOf, type AppendAck } from '@perry-hub/runtime';

interface Pending {
  resolve(ack: AppendAck): void;
  reject(err: Error): void;
  deadline: number;
}

const decoder = new TextDecoder();

export class EventPublisher {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #pending = new Map<number, Pending>();
  readonly #timeoutMs: number;
  #sub: Subscription | undefined;
  #timer: NodeJS.Timeout | undefined;
  #seq = 0;

  constructor(nc: NatsConnection, timeoutMs = 5_000) {
    this.#nc = nc;
    // Under the connection's own inbox prefix: the only replies its NATS user may receive.
    this.#prefix = createInbox(inboxPrefixOf(nc));
    this.#timeoutMs = timeoutMs;
  }

  start(): void {
    this.#sub = this.#nc.subscribe(`${this.#prefix}.*`, { callback: (_err, msg) => this.#onAck(msg) });
  }

  /** The timeout sweep runs only while an ack is awaited: nothing ticks while nothing is sent. */
  #arm(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#expire(), Math.min(250, this.#timeoutMs));
    this.#timer.unref();
  }

  /**
   * Resolves with JetStream's ack: stored, or `msgId` recognised as a duplicate (see
   * `appendOnce` for one without a sequence); `extra` headers are set beside the message id.
   */
  publish(
    subject: string,
    data: Uint8Array,
    msgId: string,
    extra?: Readonly<Record<string, string>>,
  ): Promise<AppendAck> {
    const seq = ++this.#seq;
    const h = headers();
    h.set('Nats-Msg-Id', msgId);
    for (const [k, v] of Object.entries(extra ?? {})) h.set(k, v);
    return new Promise<AppendAck>((resolve, reject) => {
      this.#pending.set(seq, { resolve, reject, deadline: Date.now() + this.#timeoutMs });
      this.#arm();
      try {
        this.#nc.publish(subject, data, { reply: `${this.#prefix}.${seq}`, headers: h });
      } catch (err) {
        this.#pending.delete(seq);
        reject(err as Error);
      }
    });
  }

  #onAck(msg: Msg): void {
    const seq = Number(msg.subject.slice(this.#prefix.length + 1));
    const pending = this.#pending.get(seq);
    if (!pending) return;
    this.#pending.delete(seq);
    if (msg.headers?.hasError) {
      // 503: no stream listens on the subject (yet) — JetStream restarting, or topology missing.
      return pending.reject(new Error(`JetStream publish failed: ${msg.headers.code} ${msg.headers.description}`));
    }
    let ack: Partial<AppendAck> & { error?: { code?: number; description?: string } };
    try {
      ack = JSON.parse(decoder.decode(msg.data)) as typeof ack;
      if (ack.error) {
        const message = `JetStream publish failed: ${ack.error.description ?? ''}`;
        // 503 is JetStream being unavailable for a moment; anything else (too big, ...) is final.
        return pending.reject(
          ack.error.code === 503 ? new Error(message) : new HubError('BAD_REQUEST', message, { retry: 'never' }),
        );
      }
    } catch {
      return pending.reject(new Error('JetStream publish failed: unreadable ack'));
    }
    pending.resolve({ seq: ack.seq ?? 0, ...(ack.duplicate ? { duplicate: true } : {}) });
  }

  #expire(): void {
    const now = Date.now();
    for (const [seq, pending] of this.#pending) {
      if (pending.deadline > now) break; // deadlines grow in insertion order
      this.#pending.delete(seq);
      pending.reject(new Error('JetStream publish timed out'));
    }
    if (this.#pending.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#sub?.unsubscribe();
    for (const pending of this.#pending.values()) pending.reject(new Error('publisher stopped'));
    this.#pending.clear();
  }
}

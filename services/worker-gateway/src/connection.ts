/**
 * One WebSocket connection, before and after it knows its role. It tracks when the peer was last
 * heard from (any message, ping or pong counts: the Linux worker never pings but answers ours),
 * and it refuses to buffer without bound for a peer that does not read.
 */
import type { WebSocket } from 'ws';
import type { Logger } from 'pino';

export interface ConnectionLimits {
  readonly maxBufferedBytes: number;
  readonly slowReaderMs: number;
}

/** What a role does with the frames of its connection. */
export interface Session {
  onMessage(text: string): void;
  /** The socket is gone (closed by either side); release everything. Must not throw. */
  onClose(): void;
}

export class Connection {
  readonly ws: WebSocket;
  readonly log: Logger;
  readonly remote: string;
  readonly openedAt = Date.now();
  lastHeardAt = Date.now();
  lastPingAt = Date.now();
  session: Session | undefined;
  /** Unparseable frames received before the first message that names a role. */
  unidentifiedFrames = 0;
  /** Set while reading is paused for backpressure: silence is then ours, not the peer's. */
  paused = false;
  #closed = false;
  readonly #limits: ConnectionLimits;

  constructor(ws: WebSocket, remote: string, limits: ConnectionLimits, log: Logger) {
    this.ws = ws;
    this.remote = remote;
    this.#limits = limits;
    this.log = log;
  }

  get closed(): boolean {
    return this.#closed || this.ws.readyState !== this.ws.OPEN;
  }

  heard(): void {
    this.lastHeardAt = Date.now();
  }

  /**
   * Write a text frame. Resolves true once the frame reached the kernel, false if the socket is
   * gone. A peer whose unsent backlog passes the limit is disconnected at once: the gateway never
   * holds more than about one limit's worth per connection.
   */
  send(text: string | Uint8Array): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    const sent = new Promise<boolean>((resolve) => {
      this.ws.send(text, { binary: false }, (err) => resolve(!err));
    });
    if (this.ws.bufferedAmount > this.#limits.maxBufferedBytes) {
      this.log.warn({ remote: this.remote, bufferedBytes: this.ws.bufferedAmount }, 'slow reader disconnected');
      this.terminate();
      return Promise.resolve(false);
    }
    return sent;
  }

  /**
   * Write a frame of a stream (the CLI's replay): when the backlog passes the limit, wait for it
   * to drain instead of adding more, and disconnect a reader that stays behind for too long.
   */
  async sendPaced(text: string | Uint8Array): Promise<boolean> {
    if (this.closed) return false;
    const sent = new Promise<boolean>((resolve) => {
      this.ws.send(text, { binary: false }, (err) => resolve(!err));
    });
    if (this.ws.bufferedAmount <= this.#limits.maxBufferedBytes) return true;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'slow'>((resolve) => {
      timer = setTimeout(() => resolve('slow'), this.#limits.slowReaderMs);
    });
    const outcome = await Promise.race([sent, timedOut]);
    clearTimeout(timer);
    if (outcome === 'slow') {
      this.log.warn({ remote: this.remote, bufferedBytes: this.ws.bufferedAmount }, 'slow reader disconnected');
      this.terminate();
      return false;
    }
    return outcome;
  }

  /** Send a last frame, then close; the original closed right after its error frames. */
  async sendAndClose(text: string, code = 1000, reason = ''): Promise<void> {
    await this.send(text);
    this.close(code, reason);
  }

  close(code = 1000, reason = ''): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
    }
    // A peer that never answers the close handshake must not hold the socket.
    setTimeout(() => this.ws.terminate(), 5_000).unref();
  }

  terminate(): void {
    this.#closed = true;
    this.ws.terminate();
  }

  pause(): void {
    if (this.paused || this.closed) return;
    this.paused = true;
    this.ws.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.lastHeardAt = Date.now();
    if (!this.closed) this.ws.resume();
  }
}

/**
 * The WebSocket front door: its own port (any path, like the original's listener on 3457) and,
 * attached to another HTTP server, the path `/ws` (where the CLI looks: it derives
 * `ws://host:3456/ws` from the HTTP origin). Every connection starts unidentified; its first
 * parseable message decides whether it is a worker or a CLI (reference 2.2).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { AddressLimiter, addressKey, clientAddress } from './addresses.js';
import { CliSession } from './cli-session.js';
import { Connection } from './connection.js';
import type { GatewayContext } from './context.js';
import { readHello, secretMatches } from './hello.js';
import { AUTH_FAILED, invalidHello, parseFrame, stringField } from './wire.js';
import { WorkerSession } from './worker-session.js';

/** `/ws`, tolerating the `//ws` a server URL with a trailing slash makes the CLI ask for. */
const WS_PATH = /^\/+ws\/?(\?.*)?$/;

/** A refused worker: the socket is closing, later frames go nowhere. */
const REFUSED = { onMessage: () => undefined, onClose: () => undefined };

export class WsFrontDoor {
  readonly connections = new Set<Connection>();
  /** Called when a connection is accepted (the heartbeat's sweep runs only while there are any). */
  onConnection: () => void = () => undefined;
  readonly #ctx: GatewayContext;
  readonly #wss: WebSocketServer;
  readonly #attached = new Map<Server, (req: IncomingMessage, socket: Duplex, head: Buffer) => void>();
  readonly #perAddress: AddressLimiter;
  #listener: Server | undefined;

  constructor(ctx: GatewayContext) {
    this.#ctx = ctx;
    this.#perAddress = new AddressLimiter(ctx.config.maxConnectionsPerAddress);
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: ctx.config.maxPayloadBytes,
      // Compression costs tens of KiB per socket, and the frames are small JSON.
      perMessageDeflate: false,
    });
  }

  /** Listen on the configured port; resolves with the bound port (useful when it was 0). */
  /** True while its own port accepts connections. */
  get listening(): boolean {
    return this.#listener?.listening ?? false;
  }

  async listen(port: number, host: string): Promise<number> {
    const server = createServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain', connection: 'close' }).end('WebSocket only\n');
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(req, socket, head));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.#listener = server;
    const address = server.address();
    return typeof address === 'object' && address ? address.port : port;
  }

  /** Serve `/ws` on another HTTP server (the ingest's in the all-in-one). Returns the detach. */
  attach(server: Server): () => void {
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (WS_PATH.test(req.url ?? '')) return this.#upgrade(req, socket, head);
      // Another upgrade handler may own other paths; alone, we refuse them.
      if (server.listenerCount('upgrade') === 1) {
        socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      }
    };
    server.on('upgrade', onUpgrade);
    this.#attached.set(server, onUpgrade);
    return () => {
      server.off('upgrade', onUpgrade);
      this.#attached.delete(server);
    };
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.#ctx.stopping()) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    // Counted from the upgrade on, released when the TCP connection ends (handshake or not).
    const address = clientAddress(req, this.#ctx.config.trustedProxies);
    const key = addressKey(address);
    if (!this.#perAddress.acquire(key)) {
      this.#ctx.notices.note('connection refused: too many from one address', { address: key });
      socket.end('HTTP/1.1 429 Too Many Requests\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    let released = false;
    const release = () => {
      if (!released) this.#perAddress.release(key);
      released = true;
    };
    socket.once('close', release);
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, req, address));
  }

  #accept(ws: WebSocket, req: IncomingMessage, address: string): void {
    const remote = `${address}:${req.socket.remotePort ?? '?'}`;
    const { config, log } = this.#ctx;
    const conn = new Connection(ws, remote, config, log);
    this.connections.add(conn);
    this.onConnection();
    ws.on('message', (data: RawData) => {
      conn.heard();
      const text = toText(data);
      if (conn.session) conn.session.onMessage(text);
      else this.#identify(conn, text);
    });
    ws.on('ping', () => conn.heard());
    ws.on('pong', () => conn.heard());
    ws.on('error', (err) => log.debug({ err, remote }, 'websocket error'));
    ws.on('close', () => {
      this.connections.delete(conn);
      conn.session?.onClose();
    });
  }

  #identify(conn: Connection, text: string): void {
    const message = parseFrame(text);
    // Unparseable frames are dropped, also before the role is known, but not without end.
    if (!message) {
      if (++conn.unidentifiedFrames > this.#ctx.config.maxWatcherFrames) {
        this.#ctx.notices.note('connection closed: unparseable frames', { remote: conn.remote });
        conn.session = REFUSED;
        conn.close(1008, 'unparseable frames');
      }
      return;
    }
    const type = stringField(message, 'type');
    if (type === 'worker_hello') {
      if (!secretMatches(this.#ctx.config.workerSecret, message['secret'])) {
        conn.session = REFUSED;
        this.#ctx.notices.note('worker refused: invalid secret', { remote: conn.remote });
        void conn.sendAndClose(AUTH_FAILED);
        return;
      }
      const check = readHello(message, () => `worker-${this.#ctx.nextWorkerNumber()}`);
      if (!check.ok) {
        conn.session = REFUSED;
        this.#ctx.notices.note('worker refused: invalid worker_hello', { remote: conn.remote, reason: check.reason });
        void conn.sendAndClose(invalidHello(check.reason), 1008, 'invalid worker_hello');
        return;
      }
      const session = new WorkerSession(this.#ctx, conn, check.hello);
      conn.session = session;
      void session.start().catch((err: unknown) => {
        conn.log.error({ err, workerId: session.workerId }, 'worker registration failed');
        conn.close(1011);
      });
    } else if (type === 'subscribe') {
      const session = new CliSession(this.#ctx, conn);
      conn.session = session;
      session.handle(message);
    } else {
      conn.session = REFUSED;
      conn.close(1008);
    }
  }

  /** Stop accepting, then close every socket: workers reconnect elsewhere, CLIs re-subscribe. */
  async close(): Promise<void> {
    for (const [server, onUpgrade] of this.#attached) server.off('upgrade', onUpgrade);
    this.#attached.clear();
    const listener = this.#listener;
    this.#listener = undefined;
    const closed = listener ? new Promise<void>((resolve) => listener.close(() => resolve())) : Promise.resolve();
    for (const conn of [...this.connections]) {
      conn.close(1001, 'hub shutting down');
      // Do not wait for the peer's close frame to release the session.
      conn.session?.onClose();
    }
    listener?.closeAllConnections();
    await closed;
  }
}

function toText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

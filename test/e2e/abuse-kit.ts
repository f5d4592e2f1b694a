/**
 * Attack clients for the HTTP abuse tests: plain HTTP from a chosen client address (the hub under
 * test trusts X-Forwarded-For from 127.0.0.1 only, so each attacker can be a different address
 * while the real CLI and workers stay 127.0.0.1), and raw sockets that send a request the way a
 * hostile client would (stalling, trickling, never ending a part) and record when the answer came.
 */
import { connect, type Socket } from 'node:net';
import { CREDENTIALS, MANIFEST } from '../support/test-hub.js';

/** Hub settings shared by the abuse tests: proxies at 127.0.0.1, so X-Forwarded-For names the client. */
export const TRUST_LOOPBACK_PROXY = { PERRY_HUB_TRUST_PROXY: '127.0.0.1' };

export interface Answer {
  status: number;
  headers: Headers;
  body: { error?: { code: string; message: string } } & Record<string, unknown>;
}

/** One HTTP request as `from`. */
export async function ask(
  url: string,
  from: string,
  init: { method?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<Answer> {
  const res = await fetch(url, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: {
      'x-forwarded-for': from,
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...init.headers,
    },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === '' ? {} : (JSON.parse(text) as Answer['body']) };
}

export interface RawExchange {
  /** The answer's status line and body, once the hub answered (or closed without). */
  readonly answered: Promise<{ status: number; text: string; closed: boolean }>;
  readonly closed: Promise<void>;
  /** Bytes handed to the socket so far (the head included), whether or not the peer read them. */
  sent(): number;
  write(data: Buffer | string): Promise<boolean>;
  destroy(): void;
}

/** A request written by hand on a socket: `head` is sent at once, the body by the caller. */
export function rawRequest(url: string, head: string): RawExchange {
  const { hostname, port } = new URL(url);
  const socket: Socket = connect(Number(port), hostname);
  socket.setNoDelay(true);
  let [received, sent, finished] = ['', 0, false];
  let onAnswer!: (a: { status: number; text: string; closed: boolean }) => void;
  const answered = new Promise<{ status: number; text: string; closed: boolean }>((r) => (onAnswer = r));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const settle = (closedNow: boolean) => {
    if (finished) return;
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0);
    if (!closedNow && (status === 0 || !received.includes('\r\n\r\n'))) return;
    // Wait for the (small, JSON) body too when it is there.
    if (!closedNow && !/\}\s*$/.test(received)) return;
    finished = true;
    onAnswer({ status, text: received.slice(received.indexOf('\r\n\r\n') + 4), closed: closedNow });
  };
  socket.on('data', (d: Buffer) => {
    received += d.toString('utf8');
    settle(false);
  });
  socket.on('error', () => undefined);
  socket.once('close', () => settle(true));
  socket.write(head);
  return {
    answered,
    closed,
    sent: () => sent,
    write: (data) =>
      new Promise<boolean>((resolve) => {
        if (socket.destroyed) return resolve(false);
        sent += Buffer.byteLength(data);
        if (socket.write(data)) return resolve(true);
        // Wait for room, or for the hub to answer or hang up (then nothing drains any more).
        const done = () => {
          socket.off('drain', done).off('close', done);
          resolve(!socket.destroyed && !finished);
        };
        socket.once('drain', done).once('close', done);
        void answered.then(done);
      }),
    destroy: () => socket.destroy(),
  };
}

export function buildHead(url: string, from: string, headers: Record<string, string | number>, boundary: string) {
  const { host } = new URL(url);
  const lines = Object.entries({
    host,
    'content-type': `multipart/form-data; boundary=${boundary}`,
    'x-forwarded-for': from,
    ...headers,
  }).map(([k, v]) => `${k}: ${v}`);
  return `POST /api/v1/build HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`;
}

export const partHead = (boundary: string, name: string) =>
  `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n`;

/** The CLI's first parts (manifest, credentials) and the opening of `tarball_b64`. */
export function cliPrelude(boundary: string, targets: string[]): string {
  return (
    `${partHead(boundary, 'manifest')}${JSON.stringify({ ...MANIFEST, targets })}\r\n` +
    `${partHead(boundary, 'credentials')}${JSON.stringify(CREDENTIALS)}\r\n` +
    partHead(boundary, 'tarball_b64')
  );
}

/** Base64 of a gzip-looking tarball of `bytes` bytes, in chunks of about 64 KiB. */
export function* tarballBase64(bytes: number): Generator<string> {
  const chunk = Buffer.alloc(48 * 1024, 7);
  chunk.set([0x1f, 0x8b, 0x08], 0);
  for (let done = 0; done < bytes; done += chunk.length) {
    yield chunk.subarray(0, Math.min(chunk.length, bytes - done)).toString('base64');
    chunk.set([7, 7, 7], 0);
  }
}

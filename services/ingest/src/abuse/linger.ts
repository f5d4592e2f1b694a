/**
 * Closing a connection while the client is still sending loses the answer: the kernel meets
 * unread request bytes with a RST, which can destroy the 413/429 before the client read it. So
 * after such an answer the connection is half-closed (FIN after the answer) and what still
 * arrives is read and discarded for a moment before the socket is destroyed: what web servers
 * call a lingering close. Bounded in time, so a client that keeps sending cannot keep it.
 */
import type { FastifyRequest } from 'fastify';
import type { Socket } from 'node:net';

const LINGER_MS = 1_000;

/** Call before an answer that leaves the request body unread; the answer must say `connection: close`. */
export function lingerAfterAnswer(request: FastifyRequest): void {
  const raw = request.raw;
  const socket = raw.socket as Socket | null;
  if (!socket || socket.destroyed) return;
  // Node's HTTP server calls destroySoon() once a `connection: close` answer is written.
  socket.destroySoon = function lingeringClose(this: Socket) {
    raw.unpipe();
    raw.resume();
    if (this.writable) this.end();
    const timer = setTimeout(() => this.destroy(), LINGER_MS);
    timer.unref();
    this.once('close', () => clearTimeout(timer));
    // The client read the answer and closed its side: nothing to wait for.
    this.once('end', () => this.destroy());
  };
}

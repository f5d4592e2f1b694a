/**
 * Connections per client address. The address is the TCP peer's, unless that peer is a trusted
 * reverse proxy: then it is the last hop the proxy added to `X-Forwarded-For` (everything left of
 * it was written by the client and proves nothing). IPv6 clients are counted per /64, the
 * smallest block one customer usually holds.
 */
import { isIPv6 } from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { AddressList } from '@perry-hub/runtime';

export function clientAddress(req: IncomingMessage, trustedProxies: AddressList): string {
  const peer = normalise(req.socket.remoteAddress ?? '');
  if (!trustedProxies.includes(peer)) return peer;
  const forwarded = req.headers['x-forwarded-for'];
  const list = (Array.isArray(forwarded) ? forwarded.join(',') : (forwarded ?? '')).split(',');
  const last = list[list.length - 1]?.trim();
  return last ? normalise(last) : peer;
}

/** `::ffff:1.2.3.4` is an IPv4 client; an IPv6 one is keyed by its first four groups. */
export function addressKey(address: string): string {
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (v4) return v4[1]!;
  if (!isIPv6(address)) return address;
  return `${expand(address).slice(0, 4).join(':')}::/64`;
}

function normalise(address: string): string {
  return address.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1');
}

function expand(address: string): string[] {
  const [head = '', tail] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = tail === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((group) => group.toLowerCase().replace(/^0+(?=.)/, ''));
}

/** Counts open connections per address key; `acquire` says whether one more may open. */
export class AddressLimiter {
  readonly #open = new Map<string, number>();
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  acquire(key: string): boolean {
    const n = this.#open.get(key) ?? 0;
    if (n >= this.#max) return false;
    this.#open.set(key, n + 1);
    return true;
  }

  release(key: string): void {
    const n = (this.#open.get(key) ?? 0) - 1;
    if (n <= 0) this.#open.delete(key);
    else this.#open.set(key, n);
  }
}

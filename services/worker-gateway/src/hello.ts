/**
 * `worker_hello`, read the way the original read it (reference 2.4.1), with its defaults: the
 * Windows worker never sends `max_concurrent`, and a worker without `capabilities` was taken for
 * a macOS one. Pure, so the defaults are tested without sockets.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { WireObject } from '@perry-hub/contracts';

export interface Hello {
  readonly name: string;
  readonly capabilities: string[];
  readonly maxConcurrent: number;
  readonly perryVersion: string;
}

export function readHello(message: WireObject, defaultName: () => string): Hello {
  const caps = message['capabilities'];
  const capabilities =
    Array.isArray(caps) && caps.every((c): c is string => typeof c === 'string') ? [...caps] : ['macos'];
  const name = typeof message['name'] === 'string' && message['name'] !== '' ? message['name'] : defaultName();
  // The original's `|| 1`: absent, 0, negative or not a number all mean one slot.
  const max = message['max_concurrent'];
  const maxConcurrent = typeof max === 'number' && Number.isFinite(max) && max >= 1 ? Math.floor(max) : 1;
  const version = message['perry_version'];
  return { name, capabilities, maxConcurrent, perryVersion: typeof version === 'string' ? version : '' };
}

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

/**
 * Constant-time secret check (the original compared with `!==`). Hashing first makes the
 * comparison independent of the lengths too. An empty configured secret accepts everyone: the
 * original's behaviour, which the gateway warns about at start.
 */
export function secretMatches(configured: string, presented: unknown): boolean {
  if (configured === '') return true;
  if (typeof presented !== 'string') return false;
  return timingSafeEqual(digest(configured), digest(presented));
}

/**
 * `worker_hello`, read the way the original read it (reference 2.4.1) where it was sound, and
 * checked where it was not: the original took any name (a 2,000-character one later broke the
 * worker's dispatch in MySQL), turned malformed capabilities into `macos` and any bad
 * `max_concurrent` into 1. Here a hello is refused at the gateway, with the reason, when a field
 * is present but wrong; absent fields keep the original's defaults (the Windows worker never
 * sends `max_concurrent`; a worker without a name gets `worker-<n>`; one without capabilities
 * is a macOS one). Pure, so every rule is tested without sockets.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import {
  PERRY_VERSION_MAX_CHARS,
  PERRY_VERSION_PATTERN,
  WORKER_CAPABILITIES,
  WORKER_MAX_SLOTS,
  WORKER_NAME_MAX_CHARS,
  WORKER_NAME_PATTERN,
  type WireObject,
} from '@perry-hub/contracts';

export interface Hello {
  readonly name: string;
  readonly capabilities: string[];
  readonly maxConcurrent: number;
  readonly perryVersion: string;
}

export type HelloCheck = { readonly ok: true; readonly hello: Hello } | { readonly ok: false; readonly reason: string };

const NAME = new RegExp(WORKER_NAME_PATTERN);
const VERSION = new RegExp(PERRY_VERSION_PATTERN);
const KNOWN = new Set(WORKER_CAPABILITIES);

const refuse = (reason: string): HelloCheck => ({ ok: false, reason });

export function readHello(message: WireObject, defaultName: () => string): HelloCheck {
  const name = message['name'];
  if (name !== undefined && name !== null && name !== '') {
    if (typeof name !== 'string' || name.length > WORKER_NAME_MAX_CHARS || !NAME.test(name)) {
      return refuse(
        `name must be 1 to ${WORKER_NAME_MAX_CHARS} characters of A-Z a-z 0-9 . _ - (starting with a letter or digit)`,
      );
    }
  }
  const caps = message['capabilities'];
  let capabilities = ['macos'];
  if (caps !== undefined) {
    if (!Array.isArray(caps) || caps.length === 0 || caps.length > KNOWN.size) {
      return refuse(`capabilities must be a non-empty list of: ${WORKER_CAPABILITIES.join(', ')}`);
    }
    const unknown = caps.filter((c) => typeof c !== 'string' || !KNOWN.has(c));
    if (unknown.length > 0) {
      return refuse(
        `unknown capabilities ${JSON.stringify(unknown).slice(0, 60)}; known: ${WORKER_CAPABILITIES.join(', ')}`,
      );
    }
    capabilities = [...new Set(caps as string[])];
  }
  const max = message['max_concurrent'];
  let maxConcurrent = 1;
  if (max !== undefined && max !== null) {
    if (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > WORKER_MAX_SLOTS) {
      return refuse(`max_concurrent must be an integer from 1 to ${WORKER_MAX_SLOTS}`);
    }
    maxConcurrent = max;
  }
  const version = message['perry_version'];
  if (version !== undefined && version !== null) {
    if (typeof version !== 'string' || version.length > PERRY_VERSION_MAX_CHARS || !VERSION.test(version)) {
      return refuse(`perry_version must be at most ${PERRY_VERSION_MAX_CHARS} printable characters`);
    }
  }
  return {
    ok: true,
    hello: {
      name: typeof name === 'string' && name !== '' ? name : defaultName(),
      capabilities,
      maxConcurrent,
      perryVersion: typeof version === 'string' ? version : '',
    },
  };
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

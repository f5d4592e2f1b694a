/**
 * The JSON parts of a submission. The manifest is kept as the text the client sent (workers get
 * unknown keys untouched) and checked against the contract's schema; a failure names the field.
 * Credentials are only checked to be a JSON object: their content is never read, echoed or logged.
 */
import { BUILD_TYPES, BuildManifest, CLIENT_TARGETS, HubError } from '@perry-hub/contracts';
import { problems } from '@perry-hub/runtime';

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

class ForbiddenKey extends Error {}

/** JSON.parse that refuses keys which could reach an object prototype downstream. */
function parseStrict(text: string): unknown {
  return JSON.parse(text, (key, value: unknown) => {
    if (FORBIDDEN_KEYS.has(key)) throw new ForbiddenKey(key);
    return value;
  });
}

/** Same rule for values that arrived already parsed (NATS submissions). */
export function assertNoForbiddenKeys(value: unknown, what: string): void {
  if (value === null || typeof value !== 'object') return;
  for (const [key, inner] of Object.entries(value)) {
    if (FORBIDDEN_KEYS.has(key)) throw new HubError('BAD_REQUEST', `Invalid ${what}: key "${key}" is not allowed`);
    assertNoForbiddenKeys(inner, what);
  }
}

function parseObject(text: string, what: 'manifest' | 'credentials'): Record<string, unknown> {
  let value: unknown;
  try {
    value = parseStrict(text);
  } catch (err) {
    // The parser's message quotes the input: never pass it on (credentials are secret).
    if (err instanceof ForbiddenKey) {
      throw new HubError('BAD_REQUEST', `Invalid ${what} JSON: key "${err.message}" is not allowed`);
    }
    throw new HubError('BAD_REQUEST', `Invalid ${what} JSON`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new HubError('BAD_REQUEST', `Invalid ${what} JSON: expected an object`);
  }
  return value as Record<string, unknown>;
}

const field = (path: string) =>
  path
    .replace(/^\//, '')
    .replace(/\/(\d+)/g, '[$1]')
    .replace(/\//g, '.');

/** `Invalid manifest: missing 'entry'` / `Invalid manifest: 'targets[0]' must be one of ...`. */
export function checkManifest(value: Record<string, unknown>): BuildManifest {
  const found = problems(BuildManifest, value, 1);
  if (found.length === 0) return value as BuildManifest;
  const missing = /^\(root\) must have required properties? (.+)$/.exec(found[0]!);
  if (missing) throw new HubError('BAD_REQUEST', `Invalid manifest: missing '${missing[1]!.split(', ')[0]}'`);
  const [path = '', ...rest] = found[0]!.split(' ');
  const allowed = path.startsWith('/build_type') ? BUILD_TYPES : CLIENT_TARGETS;
  const reason = rest
    .join(' ')
    .replace('must be equal to one of the allowed values', `must be one of ${allowed.join(', ')}`);
  throw new HubError('BAD_REQUEST', `Invalid manifest: '${field(path)}' ${reason}`);
}

export function parseManifest(text: string): BuildManifest {
  return checkManifest(parseObject(text, 'manifest'));
}

/** Returns the text unchanged once it is known to be a JSON object. */
export function checkCredentials(text: string): string {
  parseObject(text, 'credentials');
  return text;
}

import type { TSchema, Static } from 'typebox';
import Compile from 'typebox/compile';
import type { Validator } from 'typebox/compile';
import { HubError, type ErrorCode } from '@perry-hub/contracts';

const cache = new WeakMap<TSchema, Validator>();

function validatorFor(schema: TSchema): Validator {
  let v = cache.get(schema);
  if (!v) {
    v = Compile(schema) as unknown as Validator;
    cache.set(schema, v);
  }
  return v;
}

/** Human-readable problems of `value` against `schema`, at most `limit` of them. */
export function problems(schema: TSchema, value: unknown, limit = 5): string[] {
  const v = validatorFor(schema);
  if (v.Check(value)) return [];
  return v
    .Errors(value)
    .slice(0, limit)
    .map((e) => {
      const extra =
        e.keyword === 'additionalProperties'
          ? `: ${(e.params as { additionalProperties: string[] }).additionalProperties.join(', ')}`
          : '';
      return `${e.instancePath || '(root)'} ${e.message}${extra}`;
    });
}

/**
 * Check a value that crossed an edge (bus or wire). Nothing is coerced or stripped: a value that
 * does not match is refused with every problem named.
 */
export function decode<T extends TSchema>(
  schema: T,
  value: unknown,
  what: string,
  code: ErrorCode = 'BAD_REQUEST',
): Static<T> {
  const found = problems(schema, value);
  if (found.length > 0) throw new HubError(code, `Invalid ${what}: ${found.join('; ')}`);
  return value as Static<T>;
}

export function isValid<T extends TSchema>(schema: T, value: unknown): value is Static<T> {
  return validatorFor(schema).Check(value);
}

/** A stored entry's (KV or message) JSON, or undefined when it is not JSON: checked next by the caller. */
export function jsonOf(entry: { json(): unknown }): unknown {
  try {
    return entry.json();
  } catch {
    return undefined;
  }
}

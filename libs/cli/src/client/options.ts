/**
 * Checks of option values that the hub would refuse anyway, made before anything is packed or
 * sent: a mistake is a usage error (exit 2) that names the option and what it accepts, not a
 * 400 from the hub (exit 3). The ranges and value sets are the contracts' own, which the hub
 * validates with.
 */
import { parseSinceMs } from '@perry-hub/contracts';
import { CliError, EXIT } from './common.js';

const bad = (option: string, accepted: string, got: string) =>
  new CliError(`${option} must be ${accepted} (got "${got}")`, EXIT.usage);

/** A whole number within the range; the string the hub is sent stays as typed. */
export function checkInteger(option: string, value: string, range: { min: number; max: number }): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(n >= range.min && n <= range.max)) throw bad(option, `a whole number from ${range.min} to ${range.max}`, value);
  return n;
}

export function checkOneOf<T extends string>(option: string, value: string, accepted: readonly T[]): T {
  if (!(accepted as readonly string[]).includes(value)) throw bad(option, `one of ${accepted.join(', ')}`, value);
  return value as T;
}

/** A comma-separated list, each item one of `accepted`. */
export function checkListOf<T extends string>(option: string, value: string, accepted: readonly T[]): T[] {
  const items = value.split(',').filter(Boolean);
  if (items.length === 0 || items.some((s) => !(accepted as readonly string[]).includes(s))) {
    throw bad(option, `one or more of ${accepted.join(', ')}, comma-separated`, value);
  }
  return items as T[];
}

/** An ISO 8601 time or epoch milliseconds, as the hub reads `since`. */
export function checkTime(option: string, value: string): number {
  const ms = parseSinceMs(value);
  if (ms === undefined) throw bad(option, 'an ISO 8601 time or epoch milliseconds', value);
  return ms;
}

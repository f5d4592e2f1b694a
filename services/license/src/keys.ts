/** License keys, API tokens, usage periods and platform lists, in the original's formats. */
import { randomBytes } from 'node:crypto';
import type { Tier } from '@perry-hub/contracts';

/** 128 random bits in the original's shape: `FREE-1A2B-3C4D-…` (it had 48). */
const KEY_GROUPS = 8;

export function newLicenseKey(tier: Tier): string {
  const hex = randomBytes(KEY_GROUPS * 2)
    .toString('hex')
    .toUpperCase();
  const groups = hex.match(/.{4}/g) ?? [];
  return `${tier === 'pro' ? 'PRO' : 'FREE'}-${groups.join('-')}`;
}

/** 256 random bits, 64 hex characters (the column is VARCHAR(64)). */
export function newApiToken(): string {
  return randomBytes(32).toString('hex');
}

/** `YYYY-MM` in the hub's local time zone, as the original keyed its usage counters. */
export function periodOf(epochMs: number): string {
  const d = new Date(epochMs);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}`;
}

export const FREE_PLATFORMS: readonly string[] = ['macos'];
export const PRO_PLATFORMS: readonly string[] = ['macos', 'ios', 'android', 'windows', 'linux'];

export function platformsFor(tier: Tier): readonly string[] {
  return tier === 'pro' ? PRO_PLATFORMS : FREE_PLATFORMS;
}

/** Columns of an adopted database may hold anything; only 'pro' is pro. */
export function tierOf(value: unknown): Tier {
  return value === 'pro' ? 'pro' : 'free';
}

export function parsePlatforms(text: unknown): string[] {
  try {
    const value: unknown = JSON.parse(String(text));
    return Array.isArray(value) ? value.filter((p): p is string => typeof p === 'string') : [];
  } catch {
    return [];
  }
}

/**
 * Licenses and their resolution from what a client presents: a license key, or the API token of
 * an account (whose first license is used, created when missing, and given the account's tier).
 * Lookups go through the index, then the value is compared whole in constant time: MySQL's
 * default collation would also match a key in other letter case or with trailing spaces.
 */
import type { PoolConnection, RowDataPacket } from '@perry-hub/db';
import type { Tier } from '@perry-hub/contracts';
import { sameSecret } from '@perry-hub/runtime';
import { invalidApiToken, invalidLicense } from './errors.js';
import { newLicenseKey, parsePlatforms, platformsFor, tierOf } from './keys.js';

export interface LicenseRow {
  licenseKey: string;
  tier: Tier;
  platforms: string[];
  accountId: string | null;
  deviceBound: boolean;
  projectBundleId: string | null;
}

export interface AccountRow {
  id: string;
  githubUsername: string;
  email: string;
  tier: Tier;
  apiToken: string;
  hasPaymentMethod: boolean;
  polarCustomerId: string | null;
}

function toLicense(r: RowDataPacket): LicenseRow {
  return {
    licenseKey: String(r['licenseKey']),
    tier: tierOf(r['tier']),
    platforms: parsePlatforms(r['platforms']),
    accountId: r['account_id'] == null ? null : String(r['account_id']),
    deviceBound: Boolean(r['device_bound']),
    projectBundleId: r['project_bundle_id'] ? String(r['project_bundle_id']) : null,
  };
}

export function toAccount(r: RowDataPacket): AccountRow {
  return {
    id: String(r['id']),
    githubUsername: String(r['github_username'] ?? ''),
    email: String(r['email'] ?? ''),
    tier: tierOf(r['tier']),
    apiToken: String(r['api_token'] ?? ''),
    hasPaymentMethod: Boolean(r['has_payment_method']),
    polarCustomerId: r['polar_customer_id'] ? String(r['polar_customer_id']) : null,
  };
}

const LOCK = ' FOR UPDATE';

export async function findLicense(conn: PoolConnection, key: string, lock = false): Promise<LicenseRow | null> {
  const [rows] = await conn.query<RowDataPacket[]>(`SELECT * FROM licenses WHERE licenseKey = ?${lock ? LOCK : ''}`, [
    key,
  ]);
  const row = rows.map(toLicense).find((l) => sameSecret(key, l.licenseKey));
  return row ?? null;
}

export async function findAccountByToken(
  conn: PoolConnection,
  token: string,
  lock = false,
): Promise<AccountRow | null> {
  if (token === '') return null;
  const [rows] = await conn.query<RowDataPacket[]>(`SELECT * FROM accounts WHERE api_token = ?${lock ? LOCK : ''}`, [
    token,
  ]);
  return rows.map(toAccount).find((a) => sameSecret(token, a.apiToken)) ?? null;
}

export async function insertLicense(
  conn: PoolConnection,
  fields: { tier: Tier; githubUsername: string | null; accountId: string | null; deviceBound: boolean; now: number },
): Promise<LicenseRow> {
  const license: LicenseRow = {
    licenseKey: newLicenseKey(fields.tier),
    tier: fields.tier,
    platforms: [...platformsFor(fields.tier)],
    accountId: fields.accountId,
    deviceBound: fields.deviceBound,
    projectBundleId: null,
  };
  await conn.query(
    `INSERT INTO licenses (licenseKey, tier, githubUsername, platforms, createdAt, account_id, device_bound)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
    [
      license.licenseKey,
      license.tier,
      fields.githubUsername,
      JSON.stringify(license.platforms),
      fields.now,
      license.accountId,
      license.deviceBound,
    ],
  );
  return license;
}

/** An account's first license (oldest), as the original's map iteration order gave it. */
export async function firstLicenseOf(conn: PoolConnection, accountId: string, lock = false) {
  const [rows] = await conn.query<RowDataPacket[]>(
    `SELECT * FROM licenses WHERE account_id = ? ORDER BY createdAt, licenseKey LIMIT 1${lock ? LOCK : ''}`,
    [accountId],
  );
  return rows[0] ? toLicense(rows[0]) : null;
}

/** Copy an account's tier onto its licenses; pro widens platforms (never narrowed, as originally). */
export async function syncTier(conn: PoolConnection, accountId: string, tier: Tier): Promise<void> {
  if (tier === 'pro') {
    await conn.query('UPDATE licenses SET tier = ?, platforms = ? WHERE account_id = ?', [
      tier,
      JSON.stringify(platformsFor('pro')),
      accountId,
    ]);
  } else {
    await conn.query('UPDATE licenses SET tier = ? WHERE account_id = ?', [tier, accountId]);
  }
}

/**
 * The license a submission runs under. API token: the account's first license (created, not
 * device-bound, when missing) with the account's tier. Otherwise the license key, exactly.
 * Both rows are locked, so concurrent submissions of one license are decided one at a time.
 */
export async function resolveLicense(
  conn: PoolConnection,
  presented: { licenseKey?: string | undefined; apiToken?: string | undefined },
  now: number,
): Promise<LicenseRow> {
  if (presented.apiToken !== undefined) {
    const account = await findAccountByToken(conn, presented.apiToken, true);
    if (!account) throw invalidApiToken();
    const license =
      (await firstLicenseOf(conn, account.id, true)) ??
      (await insertLicense(conn, {
        tier: account.tier,
        githubUsername: account.githubUsername || null,
        accountId: account.id,
        deviceBound: false,
        now,
      }));
    if (license.tier !== account.tier) {
      await syncTier(conn, account.id, account.tier);
      return { ...license, tier: account.tier };
    }
    return license;
  }
  const license = presented.licenseKey ? await findLicense(conn, presented.licenseKey, true) : null;
  if (!license) throw invalidLicense();
  return license;
}

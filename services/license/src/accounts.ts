/** License registration and verification, and accounts (created by the dashboard after OAuth). */
import { randomUUID } from 'node:crypto';
import type { accountCreateEndpoint, accountUpdateEndpoint, verifyLicenseEndpoint } from '@perry-hub/contracts';
import { TIER_LIMITS, type AccountView, type LicenseInfo, type RequestOf, type ResponseOf } from '@perry-hub/contracts';
import type { Pool, RowDataPacket } from '@perry-hub/db';
import { inTransaction, isDuplicateKey } from './db.js';
import { accountNotFound, invalidApiToken } from './errors.js';
import { newApiToken, periodOf } from './keys.js';
import { publishesIn } from './authorize.js';
import { findAccountByToken, findLicense, firstLicenseOf, insertLicense, syncTier, toAccount } from './licenses.js';

/** A free, device-bound license, as `perry publish` auto-registers one (reference 3.7). */
export async function registerLicense(db: Pool, githubUsername: string | null, now = Date.now()): Promise<LicenseInfo> {
  return inTransaction(db, async (conn) => {
    const license = await insertLicense(conn, {
      tier: 'free',
      githubUsername,
      accountId: null,
      deviceBound: true,
      now,
    });
    return { licenseKey: license.licenseKey, tier: license.tier, platforms: license.platforms };
  });
}

export async function verifyLicense(db: Pool, licenseKey: string): Promise<ResponseOf<typeof verifyLicenseEndpoint>> {
  const conn = await db.getConnection();
  try {
    const license = licenseKey === '' ? null : await findLicense(conn, licenseKey);
    return license
      ? { valid: true, tier: license.tier, platforms: license.platforms }
      : { valid: false, tier: null, platforms: null };
  } finally {
    conn.release();
  }
}

/** Usage comes from the account's first license, as originally. */
export async function getAccount(db: Pool, apiToken: string, now = Date.now()): Promise<AccountView> {
  const conn = await db.getConnection();
  try {
    const account = await findAccountByToken(conn, apiToken);
    if (!account) throw invalidApiToken();
    const license = await firstLicenseOf(conn, account.id);
    const period = periodOf(now);
    const usage = license ? await publishesIn(conn, license.licenseKey, period) : { publishes: 0, deepVerifies: 0 };
    const limits = TIER_LIMITS[account.tier];
    return {
      id: account.id,
      githubUsername: account.githubUsername,
      email: account.email,
      tier: account.tier,
      hasPaymentMethod: account.hasPaymentMethod,
      usage: {
        publishes: usage.publishes,
        publishLimit: limits.monthlyPublishes,
        deepVerifies: usage.deepVerifies,
        verifyLimit: limits.monthlyDeepVerifies,
        period,
      },
    };
  } finally {
    conn.release();
  }
}

type CreateResult = ResponseOf<typeof accountCreateEndpoint>;

async function byGithubId(db: Pool, githubId: string): Promise<CreateResult | null> {
  const [rows] = await db.query<RowDataPacket[]>('SELECT * FROM accounts WHERE github_id = ?', [githubId]);
  const row = rows[0];
  if (!row) return null;
  const account = toAccount(row);
  let apiToken = account.apiToken;
  if (apiToken === '') {
    // An adopted row without a token gets one, so the dashboard can hand it out.
    apiToken = newApiToken();
    await db.query('UPDATE accounts SET api_token = ? WHERE id = ? AND api_token IS NULL', [apiToken, account.id]);
  }
  return { id: account.id, apiToken, githubUsername: account.githubUsername, tier: account.tier, created: false };
}

/**
 * The existing account of a GitHub id (with its token), or a new free one. github_id is
 * compared as a string: the original's strict equality told 42 and "42" apart.
 */
export async function createAccount(
  db: Pool,
  request: RequestOf<typeof accountCreateEndpoint>,
  now = Date.now(),
): Promise<CreateResult> {
  const existing = await byGithubId(db, request.githubId);
  if (existing) return existing;
  const account = { id: randomUUID(), apiToken: newApiToken() };
  try {
    await db.query(
      `INSERT INTO accounts (id, github_username, github_id, email, tier, api_token, has_payment_method, created_at)
       VALUES (?, ?, ?, ?, 'free', ?, FALSE, ?)`,
      [account.id, request.githubUsername, request.githubId, request.email ?? '', account.apiToken, now],
    );
  } catch (err) {
    // Another instance created it at the same moment: answer with that one.
    if (isDuplicateKey(err)) {
      const raced = await byGithubId(db, request.githubId);
      if (raced) return raced;
    }
    throw err;
  }
  return { ...account, githubUsername: request.githubUsername, tier: 'free', created: true };
}

/** Updates the account and gives every linked license its tier. */
export async function updateAccount(db: Pool, request: RequestOf<typeof accountUpdateEndpoint>): Promise<void> {
  await inTransaction(db, async (conn) => {
    const [rows] = await conn.query<RowDataPacket[]>('SELECT * FROM accounts WHERE id = ? FOR UPDATE', [
      request.accountId,
    ]);
    if (!rows[0]) throw accountNotFound();
    const sets: string[] = [];
    const values: unknown[] = [];
    const set = (column: string, value: unknown) => {
      if (value === undefined) return;
      sets.push(`${column} = ?`);
      values.push(value);
    };
    set('tier', request.tier);
    set('polar_customer_id', request.polarCustomerId);
    set('polar_subscription_id', request.polarSubscriptionId);
    set('has_payment_method', request.hasPaymentMethod);
    if (sets.length > 0)
      await conn.query(`UPDATE accounts SET ${sets.join(', ')} WHERE id = ?`, [...values, request.accountId]);
    await syncTier(conn, request.accountId, request.tier ?? toAccount(rows[0]).tier);
  });
}

/**
 * Submission authorization: license, device binding, monthly quota, hourly limit and upload size,
 * decided and reserved in one transaction on the license's row, so concurrent submissions and
 * several instances cannot overshoot a limit (the original checked at submission and counted at
 * completion, in memory).
 *
 * A reservation is a `submissions` row. It counts toward the hourly limit unless released, and
 * toward the monthly quota while in flight (pending and either recorded as a build or younger
 * than the grace period: an intake that died never records one). It carries the deadline of the
 * request that made it, so one whose request died with its process is released (reservations.ts).
 */
import type { authorizeSubmissionEndpoint } from '@perry-hub/contracts';
import {
  HubError,
  TIER_LIMITS,
  TIER_PRIORITY,
  type RequestOf,
  type SubmissionAuthorization,
} from '@perry-hub/contracts';
import type { Pool, PoolConnection, RowDataPacket } from '@perry-hub/db';
import { inTransaction } from './db.js';
import { accountRequired, publishLimitReached, rateLimited, uploadTooLarge } from './errors.js';
import { periodOf } from './keys.js';
import { resolveLicense, type LicenseRow } from './licenses.js';
import { authorizeByProcedure, type Procedures } from './procedures.js';

const HOUR_MS = 3_600_000;

export interface AuthorizeOptions {
  selfHosted: boolean;
  inFlightGraceMs: number;
  /** Decide the common case in one CALL first (procedures.ts); without it, the transaction does. */
  procedures?: Procedures | undefined;
}

async function count(conn: PoolConnection, sql: string, params: unknown[]): Promise<number> {
  const [rows] = await conn.query<RowDataPacket[]>(sql, params);
  return Number(rows[0]?.['n'] ?? 0);
}

export async function publishesIn(conn: PoolConnection | Pool, licenseKey: string, period: string) {
  const [rows] = await conn.query<RowDataPacket[]>(
    'SELECT publishes, deep_verifies FROM usage_counters WHERE license_key = ? AND period = ?',
    [licenseKey, period],
  );
  return { publishes: Number(rows[0]?.['publishes'] ?? 0), deepVerifies: Number(rows[0]?.['deep_verifies'] ?? 0) };
}

async function checkQuotas(conn: PoolConnection, license: LicenseRow, now: number, options: AuthorizeOptions) {
  const limits = TIER_LIMITS[license.tier];
  const period = periodOf(now);
  // One statement for the three counts (the license row is locked: they cannot move meanwhile).
  const [rows] = await conn.query<RowDataPacket[]>(
    `SELECT
       (SELECT publishes FROM usage_counters WHERE license_key = ? AND period = ?) AS publishes,
       (SELECT COUNT(*) FROM submissions s WHERE s.license_key = ? AND s.state = 'pending'
          AND (s.submitted_at > ? OR EXISTS (SELECT 1 FROM builds b WHERE b.id = s.job_id))) AS in_flight,
       (SELECT COUNT(*) FROM submissions WHERE license_key = ? AND state <> 'released' AND submitted_at > ?) AS last_hour`,
    [license.licenseKey, period, license.licenseKey, now - options.inFlightGraceMs, license.licenseKey, now - HOUR_MS],
  );
  const publishes = Number(rows[0]?.['publishes'] ?? 0);
  const inFlight = Number(rows[0]?.['in_flight'] ?? 0);
  const lastHour = Number(rows[0]?.['last_hour'] ?? 0);
  // Pro with an account may exceed the quota: the overage is billed.
  if (!(license.tier === 'pro' && license.accountId) && publishes + inFlight >= limits.monthlyPublishes) {
    throw publishLimitReached(publishes + inFlight, limits.monthlyPublishes, period);
  }
  if (lastHour >= limits.hourlySubmissions) throw rateLimited(limits.hourlySubmissions);
}

/** Binds a device license to its first project; true if this submission made the binding. */
async function bindProject(conn: PoolConnection, license: LicenseRow, projectId: string): Promise<boolean> {
  if (!license.deviceBound || license.accountId || projectId === '') return false;
  if (license.projectBundleId === null) {
    await conn.query('UPDATE licenses SET project_bundle_id = ? WHERE licenseKey = ?', [projectId, license.licenseKey]);
    return true;
  }
  if (license.projectBundleId !== projectId) throw accountRequired();
  return false;
}

/** A limit refused a submission that asked to hear it as an answer: the transaction rolls back. */
class Limited extends Error {
  constructor(
    readonly licenseKey: string,
    readonly refusal: HubError & { code: 'RATE_LIMITED' | 'PUBLISH_LIMIT_REACHED' },
  ) {
    super(refusal.message);
  }
}

const isLimit = (err: unknown): err is HubError & { code: 'RATE_LIMITED' | 'PUBLISH_LIMIT_REACHED' } =>
  err instanceof HubError && (err.code === 'RATE_LIMITED' || err.code === 'PUBLISH_LIMIT_REACHED');

/**
 * Decide and reserve: by license key, a CALL decides the common case in one statement (a refusal
 * is referred to the transaction, which words it). With `deferLimits`, a refusal by the hourly limit or the monthly quota is
 * answered as `limited` (nothing reserved, no project bound): the caller may find that the
 * submission is the retry of a build already counted, which no limit refuses.
 */
export async function authorizeSubmission(
  db: Pool,
  request: RequestOf<typeof authorizeSubmissionEndpoint>,
  options: AuthorizeOptions,
  now = Date.now(),
): Promise<SubmissionAuthorization> {
  try {
    if (options.procedures) {
      const decided = await authorizeByProcedure(options.procedures, db, request, options, periodOf(now), now);
      if (decided !== 'refer') return decided;
    }
    return await decide(db, request, options, now);
  } catch (err) {
    if (!(err instanceof Limited)) throw err;
    const { code, message, details } = err.refusal;
    return { kind: 'limited', licenseKey: err.licenseKey, error: { code, message, ...(details ? { details } : {}) } };
  }
}

async function decide(
  db: Pool,
  request: RequestOf<typeof authorizeSubmissionEndpoint>,
  options: AuthorizeOptions,
  now: number,
): Promise<SubmissionAuthorization> {
  return inTransaction(db, async (conn) => {
    const license = await resolveLicense(conn, request, now);
    if (request.idempotencyKey !== undefined) {
      const [rows] = await conn.query<RowDataPacket[]>(
        'SELECT id FROM builds WHERE licenseKey = ? AND idempotency_key = ? AND BINARY idempotency_key = ?',
        [license.licenseKey, request.idempotencyKey, request.idempotencyKey],
      );
      const jobId = rows[0]?.['id'];
      if (jobId) return { kind: 'duplicate', jobId: String(jobId), licenseKey: license.licenseKey };
    }
    const limits = TIER_LIMITS[license.tier];
    if (request.declaredBytes !== undefined && request.declaredBytes > limits.maxUploadBytes) {
      throw uploadTooLarge(license.tier, limits.maxUploadBytes);
    }
    // Self-hosted hubs have no perryts.com accounts to log in to: no binding, no quotas.
    const bound = options.selfHosted ? false : await bindProject(conn, license, request.projectId);
    if (!options.selfHosted) {
      await checkQuotas(conn, license, now, options).catch((err: unknown) => {
        throw request.deferLimits && isLimit(err) ? new Limited(license.licenseKey, err) : err;
      });
    }
    await conn.query(
      `INSERT INTO submissions (job_id, license_key, account_id, submitted_at, state, bound_project, expires_at, instance_id)
       VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)`,
      [
        request.jobId,
        license.licenseKey,
        license.accountId,
        now,
        bound,
        now + (request.holdMs ?? options.inFlightGraceMs),
        request.instanceId ?? null,
      ],
    );
    return {
      kind: 'accepted',
      licenseKey: license.licenseKey,
      tier: license.tier,
      priority: TIER_PRIORITY[license.tier],
      accountId: license.accountId,
      limits: {
        maxUploadBytes: limits.maxUploadBytes,
        concurrentBuilds: limits.concurrentBuilds,
        hourlySubmissions: limits.hourlySubmissions,
        monthlyPublishes: limits.monthlyPublishes,
      },
    };
  });
}

/**
 * Undo a project binding made by a submission that came to nothing, unless another submission
 * of the license (in flight or done) holds on to it.
 */
export async function unbindIfOnlyHolder(conn: PoolConnection, jobId: string, licenseKey: string): Promise<void> {
  const others = await count(
    conn,
    "SELECT COUNT(*) AS n FROM submissions WHERE license_key = ? AND job_id <> ? AND (state = 'pending' OR outcome = 'succeeded')",
    [licenseKey, jobId],
  );
  if (others === 0) {
    await conn.query('UPDATE licenses SET project_bundle_id = NULL WHERE licenseKey = ?', [licenseKey]);
  }
  await conn.query('UPDATE submissions SET bound_project = 0 WHERE job_id = ?', [jobId]);
}

/** The intake failed after authorization: the reservation counts toward nothing. Idempotent. */
export async function releaseSubmission(db: Pool, jobId: string): Promise<boolean> {
  return inTransaction(db, async (conn) => {
    // Lock in the order authorization does (license, then submission) to avoid deadlocks.
    const [found] = await conn.query<RowDataPacket[]>('SELECT license_key FROM submissions WHERE job_id = ?', [jobId]);
    const licenseKey = found[0]?.['license_key'];
    if (licenseKey === undefined) return false;
    await conn.query('SELECT licenseKey FROM licenses WHERE licenseKey = ? FOR UPDATE', [licenseKey]);
    const [rows] = await conn.query<RowDataPacket[]>(
      "SELECT bound_project FROM submissions WHERE job_id = ? AND state = 'pending' FOR UPDATE",
      [jobId],
    );
    if (!rows[0]) return false;
    await conn.query("UPDATE submissions SET state = 'released' WHERE job_id = ?", [jobId]);
    if (rows[0]['bound_project']) await unbindIfOnlyHolder(conn, jobId, String(licenseKey));
    return true;
  });
}

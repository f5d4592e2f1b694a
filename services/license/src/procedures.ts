/**
 * The per-build decisions in one statement each: stored procedures (migration 9) that run the
 * common case's transaction inside MySQL, one `CALL` and one round trip instead of five to seven.
 * Whatever they do not settle (a refusal to word, an API token, a database where they cannot run)
 * is `refer`red to the service's own transaction, which stays the authority on every rule.
 */
import { TIER_LIMITS, TIER_PRIORITY, type SubmissionAuthorization } from '@perry-hub/contracts';
import type { ExecuteValues, Pool, RowDataPacket } from '@perry-hub/db';
import type { Logger } from '@perry-hub/runtime';
import { invalidLicense } from './errors.js';
import { tierOf } from './keys.js';

const HOUR_MS = 3_600_000;
const DEADLOCK = 1213;
const LOCK_WAIT_TIMEOUT = 1205;
const ATTEMPTS = 4;
/**
 * The procedure is missing or may not be run, or a database adopted with other collations
 * cannot compare its parameters with the columns: the transaction in code does the same work.
 */
const UNUSABLE = new Set([1305, 1370, 1044, 1142, 1267, 1270, 1271, 1406]);

export interface Procedures {
  /** False once a procedure proved unusable on this database: the transactions decide. */
  usable: boolean;
  log?: Logger | undefined;
}

export interface AuthorizeRequest {
  jobId: string;
  licenseKey?: string | undefined;
  apiToken?: string | undefined;
  projectId: string;
  declaredBytes?: number | undefined;
  idempotencyKey?: string | undefined;
  instanceId?: string | undefined;
  holdMs?: number | undefined;
}

/** Runs a CALL, retried on deadlock (its transaction was rolled back); null if unusable. */
async function call(procs: Procedures, db: Pool, sql: string, params: ExecuteValues[]): Promise<RowDataPacket | null> {
  if (!procs.usable) return null;
  for (let attempt = 1; ; attempt++) {
    try {
      const [results] = await db.execute<RowDataPacket[][]>(sql, params);
      return results[0]?.[0] ?? null;
    } catch (err) {
      const errno = (err as { errno?: number }).errno;
      if ((errno === DEADLOCK || errno === LOCK_WAIT_TIMEOUT) && attempt < ATTEMPTS) continue;
      if (errno === undefined || !UNUSABLE.has(errno)) throw err;
      procs.usable = false;
      procs.log?.warn({ err }, 'the license procedures cannot run on this database; transactions decide instead');
      return null;
    }
  }
}

/**
 * Authorization by license key in one CALL: accepted (reserved), duplicate, invalid key, or
 * `refer` (nothing done: a refusal, or anything the procedure does not handle).
 */
export async function authorizeByProcedure(
  procs: Procedures,
  db: Pool,
  request: AuthorizeRequest,
  options: { selfHosted: boolean; inFlightGraceMs: number },
  period: string,
  now: number,
): Promise<SubmissionAuthorization | 'refer'> {
  const key = request.licenseKey;
  // Tokens are the accounts' (their license may need creating); values longer than their
  // columns are for the transaction to refuse.
  if (request.apiToken !== undefined || key === undefined || key.length > 64) return 'refer';
  if ((request.idempotencyKey?.length ?? 0) > 128 || (request.instanceId?.length ?? 0) > 128) return 'refer';
  const { free, pro } = TIER_LIMITS;
  const row = await call(
    procs,
    db,
    'CALL perry_authorize_submission(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    [
      key,
      request.jobId,
      request.projectId,
      request.idempotencyKey ?? null,
      request.declaredBytes ?? null,
      options.selfHosted,
      now,
      period,
      now - options.inFlightGraceMs,
      now - HOUR_MS,
      now + (request.holdMs ?? options.inFlightGraceMs),
      request.instanceId ?? null,
      free.maxUploadBytes,
      free.monthlyPublishes,
      free.hourlySubmissions,
      pro.maxUploadBytes,
      pro.monthlyPublishes,
      pro.hourlySubmissions,
    ],
  );
  switch (row?.['verdict']) {
    case 'invalid':
      throw invalidLicense();
    case 'duplicate':
      return { kind: 'duplicate', jobId: String(row['job_id']), licenseKey: String(row['license_key']) };
    case 'accepted': {
      const tier = tierOf(row['tier']);
      const limits = TIER_LIMITS[tier];
      return {
        kind: 'accepted',
        licenseKey: String(row['license_key']),
        tier,
        priority: TIER_PRIORITY[tier],
        accountId: row['account_id'] == null ? null : String(row['account_id']),
        limits: {
          maxUploadBytes: limits.maxUploadBytes,
          concurrentBuilds: limits.concurrentBuilds,
          hourlySubmissions: limits.hourlySubmissions,
          monthlyPublishes: limits.monthlyPublishes,
        },
      };
    }
    default:
      return 'refer';
  }
}

/**
 * A succeeded job's pending reservation settled and its publish counted, in one CALL (the
 * period's counter row created if needed). False: no pending reservation of this license for the
 * job, or the procedure could not run; the transaction decides.
 */
export async function settleByProcedure(
  procs: Procedures,
  db: Pool,
  jobId: string,
  licenseKey: string,
  period: string,
): Promise<boolean> {
  if (licenseKey.length > 64) return false;
  const row = await call(procs, db, 'CALL perry_settle_publish(?, ?, ?)', [jobId, licenseKey, period]);
  return Number(row?.['settled'] ?? 0) > 0;
}

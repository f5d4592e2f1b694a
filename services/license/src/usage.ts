/**
 * Publish counting: consumes `<p>.jobs.*.done` (durable consumer `license-usage`) and counts a
 * publish only for a `succeeded` outcome, once per job id: the job's reservation leaves `pending`
 * in the same statement or transaction as the counter moves (a job without one is recorded in
 * `usage_events` instead), so a redelivered event counts nothing. Pro publishes above the
 * quota are reported to Polar when configured.
 */
import { JobDone, TIER_LIMITS, topologyNames, type Tier } from '@perry-hub/contracts';
import type { Pool, ResultSetHeader, RowDataPacket } from '@perry-hub/db';
import { consumeDurable, decode, type Logger, type NatsConnection } from '@perry-hub/runtime';
import { jetstream } from '@nats-io/jetstream';
import { inTransaction } from './db.js';
import { unbindIfOnlyHolder } from './authorize.js';
import { periodOf, tierOf } from './keys.js';
import { reportOverage, type PolarOptions } from './polar.js';
import { settleByProcedure, type Procedures } from './procedures.js';

export interface Counted {
  counted: boolean;
  licenseKey: string;
  period: string;
  publishes: number;
  tier: Tier;
  polarCustomerId: string | null;
}

/**
 * The common outcome in one statement: the job's pending reservation settled and, for a success,
 * the period's counter incremented, together (one CALL of a procedure whose transaction also
 * creates the period's counter row; without the procedure, one multi-table UPDATE, atomic, which
 * needs the row). The reservation leaving `pending` is what makes a redelivery count nothing.
 * Returns false when the statement does not apply (no pending reservation, no counter row for
 * the period yet, a project binding to give up), and the full transaction decides.
 */
async function settleAtOnce(db: Pool, done: JobDone, period: string, procedures?: Procedures): Promise<boolean> {
  if (done.outcome === 'succeeded' && procedures?.usable) {
    return settleByProcedure(procedures, db, done.jobId, done.licenseKey, period);
  }
  if (done.outcome === 'succeeded') {
    const [r] = await db.query<ResultSetHeader>(
      `UPDATE submissions s JOIN usage_counters u ON u.license_key = s.license_key AND u.period = ?
          SET s.state = 'done', s.outcome = 'succeeded', u.publishes = u.publishes + 1
        WHERE s.job_id = ? AND s.state = 'pending' AND s.license_key = ?`,
      [period, done.jobId, done.licenseKey],
    );
    return r.affectedRows > 0;
  }
  const [r] = await db.query<ResultSetHeader>(
    "UPDATE submissions SET state = 'done', outcome = ? WHERE job_id = ? AND state = 'pending' AND bound_project = 0",
    [done.outcome, done.jobId],
  );
  return r.affectedRows > 0;
}

/**
 * Apply one terminal outcome; returns what was counted (for the overage report). With `atOnce`,
 * an outcome that needs nothing but its reservation settled and its publish counted takes one
 * statement (settleAtOnce); the overage report needs the transaction's reads.
 */
export async function recordCompletion(
  db: Pool,
  done: JobDone,
  options: { atOnce?: boolean; procedures?: Procedures | undefined } = {},
): Promise<Counted> {
  const period = periodOf(done.finishedAt);
  if (options.atOnce && (await settleAtOnce(db, done, period, options.procedures))) {
    const counted = done.outcome === 'succeeded';
    return {
      counted,
      licenseKey: done.licenseKey,
      period,
      publishes: Number.NaN,
      tier: done.tier,
      polarCustomerId: null,
    };
  }
  return inTransaction(db, async (conn) => {
    // Everything the decision reads, locked, in one statement: the license (first, as every
    // transaction on a license locks it), its account, this job's reservation, its counter.
    const [rows] = await conn.query<RowDataPacket[]>(
      `SELECT l.tier, a.polar_customer_id, s.job_id AS job, s.state, s.bound_project, u.publishes
         FROM licenses l
         LEFT JOIN accounts a ON a.id = l.account_id
         LEFT JOIN submissions s ON s.job_id = ?
         LEFT JOIN usage_counters u ON u.license_key = l.licenseKey AND u.period = ?
        WHERE l.licenseKey = ? FOR UPDATE`,
      [done.jobId, period, done.licenseKey],
    );
    let lic = rows[0];
    if (!lic) {
      // No license row (it cannot be counted against): still settle the reservation.
      const [sub] = await conn.query<RowDataPacket[]>(
        'SELECT job_id AS job, state, bound_project FROM submissions WHERE job_id = ? FOR UPDATE',
        [done.jobId],
      );
      lic = sub[0];
    }
    const pending = lic?.['job'] != null && lic['state'] === 'pending';
    // A settled reservation is an outcome already applied (at once, without a usage event).
    const settled = lic?.['job'] != null && lic['state'] === 'done';
    let counted = false;
    if (done.outcome === 'succeeded' && !settled) {
      const [inserted] = await conn.query<ResultSetHeader>(
        'INSERT IGNORE INTO usage_events (job_id, license_key, period, outcome, counted_at) VALUES (?, ?, ?, ?, ?)',
        [done.jobId, done.licenseKey, period, done.outcome, Date.now()],
      );
      counted = inserted.affectedRows === 1;
      if (counted) {
        await conn.query(
          `INSERT INTO usage_counters (license_key, period, publishes, deep_verifies) VALUES (?, ?, 1, 0)
           ON DUPLICATE KEY UPDATE publishes = publishes + 1`,
          [done.licenseKey, period],
        );
      }
    }
    if (pending) {
      await conn.query("UPDATE submissions SET state = 'done', outcome = ? WHERE job_id = ?", [
        done.outcome,
        done.jobId,
      ]);
      // A binding made by a build that did not succeed is not kept (unless something else holds it).
      if (lic?.['bound_project'] && done.outcome !== 'succeeded') {
        await unbindIfOnlyHolder(conn, done.jobId, done.licenseKey);
      }
    }
    return {
      counted,
      licenseKey: done.licenseKey,
      period,
      publishes: Number(lic?.['publishes'] ?? 0) + (counted ? 1 : 0),
      tier: tierOf(lic?.['tier'] ?? done.tier),
      polarCustomerId: lic?.['polar_customer_id'] ? String(lic['polar_customer_id']) : null,
    };
  });
}

export interface UsageConsumer {
  stop(): Promise<void>;
}

const RETRY_DELAY_MS = 5_000;

export async function startUsageConsumer(
  deps: { nc: NatsConnection; db: Pool; log: Logger; prefix: string; procedures?: Procedures | undefined },
  polar: PolarOptions,
): Promise<UsageConsumer> {
  const names = topologyNames(deps.prefix);
  const consumer = await jetstream(deps.nc).consumers.get(names.eventsStream, names.licenseUsageConsumer);
  const messages = await consumeDurable(deps.nc, consumer, { max_messages: 16 }, deps.log);
  const loop = (async () => {
    for await (const m of messages) {
      let done: JobDone;
      try {
        done = decode(JobDone, m.json(), 'job outcome');
      } catch (err) {
        deps.log.warn({ err: (err as Error).message, subject: m.subject }, 'ignoring a malformed job outcome');
        m.term();
        continue;
      }
      try {
        // The overage report needs the license's account and counter: read in the transaction.
        const atOnce = !(polar.accessToken && polar.meterId && done.tier === 'pro');
        const result = await recordCompletion(deps.db, done, { atOnce, procedures: deps.procedures });
        m.ack();
        if (result.counted) {
          deps.log.info(
            { jobId: done.jobId, period: result.period, ...(atOnce ? {} : { publishes: result.publishes }) },
            'publish counted',
          );
          const limit = TIER_LIMITS[result.tier].monthlyPublishes;
          if (result.tier === 'pro' && result.publishes > limit && result.polarCustomerId) {
            await reportOverage(polar, result.polarCustomerId, deps.log);
          }
        }
      } catch (err) {
        deps.log.error({ err, jobId: done.jobId }, 'counting a job outcome failed; it will be redelivered');
        m.nak(RETRY_DELAY_MS);
      }
    }
  })();
  return {
    stop: async () => {
      await messages.close();
      await loop;
    },
  };
}

/**
 * The scheduler's reads and writes of `builds`. Every state change is a compare-and-set on
 * (id, status, attempt): the attempt is the fencing token, so a late message from a lost attempt
 * (or a second scheduler that lost its lease) changes nothing.
 */
import { appendHistory, CoalescedUpdate, type Pool, type ResultSetHeader, type RowDataPacket } from '@perry-hub/db';
import type { BuildType, JobStatus, Tier } from '@perry-hub/contracts';

export interface JobRow {
  id: string;
  licenseKey: string;
  tier: Tier;
  targets: string[];
  status: JobStatus;
  priority: number;
  attempt: number;
  retries: number;
  stage: 'build' | 'sign';
  queuedAt: number;
  startedAt: number | null;
  assignedAt: number | null;
  heartbeatAt: number | null;
  workerId: string | null;
  workerName: string | null;
  tarballRef: string | null;
  cancelRequestedAt: number | null;
  /** NULL while a completed job's result waits to be downloaded. */
  resultDelivery: 'delivered' | 'unfetched' | null;
  /** SHA-256 of the last attempt's job token: running, or queued while its worker may claim it back. */
  tokenHash: string | null;
  updatedAt: number | null;
  /** A `plugin` job is single-stage. */
  buildType: BuildType;
  /** `builds.callback_url` is set. */
  hasCallback: boolean;
}

const COLUMNS = `id, licenseKey, tier, targets, status, priority, attempt, retries, stage, queuedAt, startedAt,
  assigned_at, heartbeat_at, worker_id, workerName, tarball_ref, cancel_requested_at, result_delivery, job_token_hash,
  updated_at, build_type, callback_url IS NOT NULL AS has_callback`;

function toJob(r: RowDataPacket): JobRow {
  let targets: string[] = [];
  try {
    const parsed: unknown = JSON.parse(String(r['targets'] ?? '[]'));
    if (Array.isArray(parsed)) targets = parsed.map(String);
  } catch {
    targets = String(r['targets'] ?? '')
      .split(',')
      .filter(Boolean);
  }
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    id: String(r['id']),
    licenseKey: String(r['licenseKey'] ?? ''),
    tier: r['tier'] === 'pro' ? 'pro' : 'free',
    targets,
    status: String(r['status']) as JobStatus,
    priority: Number(r['priority'] ?? 1),
    attempt: Number(r['attempt'] ?? 0),
    retries: Number(r['retries'] ?? 0),
    stage: r['stage'] === 'sign' ? 'sign' : 'build',
    queuedAt: Number(r['queuedAt'] ?? 0),
    startedAt: num(r['startedAt']),
    assignedAt: num(r['assigned_at']),
    heartbeatAt: num(r['heartbeat_at']),
    workerId: (r['worker_id'] as string | null) ?? null,
    workerName: (r['workerName'] as string | null) ?? null,
    tarballRef: (r['tarball_ref'] as string | null) ?? null,
    cancelRequestedAt: num(r['cancel_requested_at']),
    resultDelivery:
      r['result_delivery'] === 'delivered' || r['result_delivery'] === 'unfetched' ? r['result_delivery'] : null,
    tokenHash: (r['job_token_hash'] as string | null) ?? null,
    updatedAt: num(r['updated_at']),
    buildType: r['build_type'] === 'plugin' ? 'plugin' : 'app',
    hasCallback: Number(r['has_callback'] ?? 0) === 1,
  };
}

export interface AssignmentPayload {
  manifest: string;
  credentials: Buffer | null;
}

export interface Finish {
  status: 'completed' | 'failed' | 'cancelled' | 'expired';
  errorMessage: string | null;
  /** Wire messages for the job's event log, published from the outbox. */
  finalEvents: readonly string[];
}

/** How long a published mark waits for others (the outbox's readers flush first). */
const MARKS_DELAY_MS = 1_000;

export class JobStore {
  /**
   * The outbox's published marks, coalesced: a mark lost in a crash only has the outbox published
   * again, which the events stream drops as a duplicate (its window is an hour). A second's wait
   * makes one statement of the marks of every build that ended in it.
   */
  readonly #published: CoalescedUpdate;

  constructor(
    private readonly db: Pool,
    onError: (err: unknown) => void = () => undefined,
  ) {
    this.#published = new CoalescedUpdate(
      db,
      (ids, now) => ['UPDATE builds SET done_published_at = ?, final_events = NULL WHERE id IN (?)', [now, ids]],
      { onError, delayMs: MARKS_DELAY_MS },
    );
  }

  /** Writes the marks that wait (at stop). */
  async flush(): Promise<void> {
    await this.#published.flush();
  }

  async get(jobId: string): Promise<JobRow | undefined> {
    const [rows] = await this.db.query<RowDataPacket[]>(`SELECT ${COLUMNS} FROM builds WHERE id = ?`, [jobId]);
    return rows[0] ? toJob(rows[0]) : undefined;
  }

  async active(): Promise<JobRow[]> {
    const [rows] = await this.db.query<RowDataPacket[]>(
      `SELECT ${COLUMNS} FROM builds WHERE status IN ('queued', 'running')`,
    );
    return rows.map(toJob);
  }

  /**
   * The compare-and-set to running at the next attempt, with a new token. Not while the attempt
   * the job leaves delivered an artifact in its stage (recorded with the row's stage by the
   * artifact-store's insert, which checks the attempt in the same way): its build is done, and
   * running it again would announce a second artifact. Both statements lock the job's row, so
   * an upload recorded and an assignment cannot both go through.
   */
  async assign(job: JobRow, worker: { id: string; name: string }, tokenHash: string, now: number): Promise<boolean> {
    const history = appendHistory({
      at: now,
      state: 'running',
      attempt: job.attempt + 1,
      stage: job.stage,
      worker: worker.name,
      workerId: worker.id,
    });
    const [r] = await this.db.execute<ResultSetHeader>(
      `UPDATE builds SET status = 'running', attempt = attempt + 1, worker_id = ?, workerName = ?, assigned_at = ?,
         heartbeat_at = ?, startedAt = COALESCE(startedAt, ?), job_token_hash = ?, updated_at = ?, ${history.sql}
       WHERE id = ? AND status = 'queued' AND attempt = ?
         AND NOT EXISTS (SELECT 1 FROM artifacts a
           WHERE a.job_id = builds.id AND a.attempt = builds.attempt AND a.stage = builds.stage AND a.held = FALSE)`,
      [worker.id, worker.name, now, now, now, tokenHash, now, ...history.params, job.id, job.attempt],
    );
    return r.affectedRows === 1;
  }

  async payload(jobId: string): Promise<AssignmentPayload | undefined> {
    const [rows] = await this.db.query<RowDataPacket[]>('SELECT manifest, credentials_enc FROM builds WHERE id = ?', [
      jobId,
    ]);
    const r = rows[0];
    if (!r) return undefined;
    return { manifest: String(r['manifest'] ?? '{}'), credentials: (r['credentials_enc'] as Buffer | null) ?? null };
  }

  /** Back to the queue (lost worker, undeliverable assignment, next stage). */
  async requeue(
    jobId: string,
    attempt: number,
    change: {
      retries?: number;
      stage?: 'build' | 'sign';
      targets?: string[];
      tarballRef?: string;
      reason: string;
      /** Its worker may claim it back (reclaim): the attempt's token stays valid meanwhile. */
      keepToken?: boolean;
    },
    now: number,
  ): Promise<boolean> {
    const history = appendHistory({
      at: now,
      state: 'queued',
      attempt,
      ...(change.stage ? { stage: change.stage } : {}),
      reason: change.reason,
    });
    const sets = [
      "status = 'queued'",
      'worker_id = NULL',
      ...(change.keepToken ? [] : ['job_token_hash = NULL']),
      'assigned_at = NULL',
      'updated_at = ?',
      history.sql,
    ];
    const params: unknown[] = [now, ...history.params];
    const optional: [string, unknown][] = [
      ['retries', change.retries],
      ['stage', change.stage],
      ['targets', change.targets && JSON.stringify(change.targets)],
      ['tarball_ref', change.tarballRef],
    ];
    for (const [column, value] of optional) {
      if (value === undefined) continue;
      sets.push(`${column} = ?`);
      params.push(value);
    }
    const [r] = await this.db.query<ResultSetHeader>(
      `UPDATE builds SET ${sets.join(', ')} WHERE id = ? AND status = 'running' AND attempt = ?`,
      [...params, jobId, attempt],
    );
    return r.affectedRows === 1;
  }

  /**
   * A job released while its worker still built it, claimed back by that worker after it
   * reconnected: running again at the same attempt, on its new connection, with the same token.
   */
  async reclaim(jobId: string, attempt: number, worker: { id: string; name: string }, now: number): Promise<boolean> {
    const history = appendHistory({
      at: now,
      state: 'running',
      attempt,
      worker: worker.name,
      workerId: worker.id,
      reason: 'its worker reconnected and went on with it',
    });
    const [r] = await this.db.query<ResultSetHeader>(
      `UPDATE builds SET status = 'running', worker_id = ?, workerName = ?, assigned_at = ?, heartbeat_at = ?,
         updated_at = ?, ${history.sql}
       WHERE id = ? AND status = 'queued' AND attempt = ? AND job_token_hash IS NOT NULL`,
      [worker.id, worker.name, now, now, now, ...history.params, jobId, attempt],
    );
    return r.affectedRows === 1;
  }

  /**
   * Undo an assignment that certainly never reached a worker: nobody holds the new attempt's
   * token, so handing the attempt number back keeps fencing intact (anything older was fenced
   * out when the job left its last worker, and a queued job accepts nothing).
   */
  async unassign(jobId: string, attempt: number, now: number): Promise<boolean> {
    const history = appendHistory({
      at: now,
      state: 'queued',
      attempt: attempt - 1,
      reason: 'the assignment never reached the worker',
    });
    const [r] = await this.db.query<ResultSetHeader>(
      `UPDATE builds SET status = 'queued', attempt = attempt - 1, worker_id = NULL, workerName = NULL,
         job_token_hash = NULL, assigned_at = NULL, updated_at = ?, ${history.sql}
       WHERE id = ? AND status = 'running' AND attempt = ?`,
      [now, ...history.params, jobId, attempt],
    );
    return r.affectedRows === 1;
  }

  /**
   * The terminal transition. Credentials are destroyed in the same statement, and the messages to
   * publish go into the outbox column so a crash right after this cannot lose them.
   */
  async finish(job: Pick<JobRow, 'id' | 'status' | 'attempt'>, finish: Finish, now: number): Promise<boolean> {
    const history = appendHistory({
      at: now,
      state: finish.status,
      attempt: job.attempt,
      ...(finish.errorMessage ? { reason: finish.errorMessage } : {}),
    });
    const [r] = await this.db.execute<ResultSetHeader>(
      `UPDATE builds SET status = ?, errorMessage = ?, final_events = ?, completedAt = ?,
         durationSecs = CASE WHEN startedAt IS NULL THEN NULL ELSE ROUND((? - startedAt) / 1000) END,
         credentials_enc = NULL, job_token_hash = NULL, done_published_at = NULL, updated_at = ?, ${history.sql}
       WHERE id = ? AND status = ? AND attempt = ?`,
      [
        finish.status,
        finish.errorMessage,
        JSON.stringify(finish.finalEvents),
        now,
        now,
        now,
        ...history.params,
        job.id,
        job.status,
        job.attempt,
      ],
    );
    return r.affectedRows === 1;
  }

  /** Recorded within a moment, together with the marks of the jobs finishing meanwhile. */
  markPublished(jobId: string): void {
    this.#published.add(jobId);
  }

  /** Terminal jobs whose outbox was not published (the scheduler died in between). */
  async unpublished(limit: number): Promise<(JobRow & { finalEvents: string[]; errorMessage: string | null })[]> {
    // Marks still waiting would have their outboxes published again (harmless, but for nothing).
    await this.#published.flush().catch(() => undefined);
    const [rows] = await this.db.query<RowDataPacket[]>(
      `SELECT ${COLUMNS}, final_events, errorMessage FROM builds
       WHERE done_published_at IS NULL AND final_events IS NOT NULL LIMIT ?`,
      [limit],
    );
    return rows.map((r) => ({
      ...toJob(r),
      finalEvents: JSON.parse(String(r['final_events'])) as string[],
      errorMessage: (r['errorMessage'] as string | null) ?? null,
    }));
  }

  async touch(jobId: string, attempt: number, at: number): Promise<void> {
    await this.db.query('UPDATE builds SET heartbeat_at = ? WHERE id = ? AND attempt = ? AND status = ?', [
      at,
      jobId,
      attempt,
      'running',
    ]);
  }

  /** Who submitted a job: the license it was accepted under and, with an API token, the account. */
  async owner(jobId: string): Promise<{ licenseKey: string; accountId: string | null } | undefined> {
    const [rows] = await this.db.query<RowDataPacket[]>('SELECT licenseKey, account_id FROM builds WHERE id = ?', [
      jobId,
    ]);
    const r = rows[0];
    if (!r) return undefined;
    return { licenseKey: String(r['licenseKey'] ?? ''), accountId: (r['account_id'] as string | null) ?? null };
  }

  async requestCancel(jobId: string, attempt: number, now: number): Promise<void> {
    const history = appendHistory({ at: now, state: 'cancel_requested', attempt });
    await this.db.query(`UPDATE builds SET cancel_requested_at = ?, ${history.sql} WHERE id = ? AND attempt = ?`, [
      now,
      ...history.params,
      jobId,
      attempt,
    ]);
  }

  async tokenHash(jobId: string): Promise<
    | {
        hash: string | null;
        attempt: number;
        status: string;
        stage: string;
        tarballRef: string | null;
        buildType: BuildType;
      }
    | undefined
  > {
    const [rows] = await this.db.query<RowDataPacket[]>(
      'SELECT job_token_hash, attempt, status, stage, tarball_ref, build_type FROM builds WHERE id = ?',
      [jobId],
    );
    const r = rows[0];
    if (!r) return undefined;
    return {
      hash: (r['job_token_hash'] as string | null) ?? null,
      attempt: Number(r['attempt']),
      status: String(r['status']),
      stage: String(r['stage']),
      tarballRef: (r['tarball_ref'] as string | null) ?? null,
      buildType: r['build_type'] === 'plugin' ? 'plugin' : 'app',
    };
  }
}

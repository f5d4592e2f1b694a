/**
 * The jobs API reads the build record (MySQL, the system of record) directly: one indexed query
 * per page, newest first, with a keyset cursor (`queuedAt`, `id`) so pages stay stable while jobs
 * arrive. A caller that is not the admin sees only its own jobs: the ownership test is part of
 * the query, so a stranger's job is simply not found.
 */
import {
  HubError,
  JOB_LIST_LIMIT,
  JOB_STATUSES,
  parseSinceMs,
  queuePositionEndpoint,
  type JobArtifact,
  type JobCountsResponse,
  type JobAttempt,
  type JobDetail,
  type JobHistoryEntry,
  type JobListQuery,
  type JobStatus,
  type JobSummary,
} from '@perry-hub/contracts';
import type { Pool, RowDataPacket } from '@perry-hub/db';
import { call } from '@perry-hub/runtime';
import type { Caller } from './caller.js';
import type { BusDeps } from './routes/license.js';

const COLUMNS = `id, licenseKey, tier, targets, status, stage, attempt, retries, queuedAt, startedAt, completedAt,
  durationSecs, workerName, errorMessage, account_id, result_delivery, tool`;

const iso = (ms: number) => new Date(ms).toISOString();
const isoOrNull = (v: unknown) => (v === null || v === undefined ? null : iso(Number(v)));
const strOrNull = (v: unknown) => (v === null || v === undefined ? null : String(v));

function parseTargets(text: unknown): string[] {
  try {
    const parsed: unknown = JSON.parse(String(text ?? '[]'));
    if (Array.isArray(parsed)) return parsed.map(String);
  } catch {
    // the original stored a comma-separated list
  }
  return String(text ?? '')
    .split(',')
    .filter(Boolean);
}

function toSummary(r: RowDataPacket): JobSummary {
  const state = String(r['status']) as JobStatus;
  const completed = state === 'completed';
  return {
    id: String(r['id']),
    state: JOB_STATUSES.includes(state) ? state : 'failed',
    stage: r['stage'] === 'sign' ? 'sign' : 'build',
    targets: parseTargets(r['targets']),
    tier: r['tier'] === 'pro' ? 'pro' : 'free',
    license_key: String(r['licenseKey'] ?? ''),
    account_id: strOrNull(r['account_id']),
    attempt: Number(r['attempt'] ?? 0),
    retries: Number(r['retries'] ?? 0),
    queued_at: iso(Number(r['queuedAt'] ?? 0)),
    started_at: isoOrNull(r['startedAt']),
    finished_at: isoOrNull(r['completedAt']),
    duration_secs: r['durationSecs'] === null || r['durationSecs'] === undefined ? null : Number(r['durationSecs']),
    worker: strOrNull(r['workerName']),
    error: strOrNull(r['errorMessage']),
    delivery: completed
      ? r['result_delivery'] === 'delivered' || r['result_delivery'] === 'unfetched'
        ? r['result_delivery']
        : 'pending'
      : null,
    ...(typeof r['tool'] === 'string' ? { tool: r['tool'] } : {}),
  };
}

/** The ownership condition of a caller, as SQL and parameters. */
function ownedBy(caller: Caller): { sql: string; params: unknown[] } {
  if (caller.kind === 'admin') return { sql: '1 = 1', params: [] };
  if (caller.kind === 'account') return { sql: 'account_id = ?', params: [caller.accountId] };
  if (caller.kind === 'tool') return { sql: 'tool = ?', params: [caller.tool] };
  return { sql: 'licenseKey = ?', params: [caller.licenseKey] };
}

function parseSince(value: string): number {
  const ms = parseSinceMs(value);
  if (ms === undefined) throw new HubError('BAD_REQUEST', `'since' is not a time: ${value}`);
  return ms;
}

function encodeCursor(queuedAt: number, id: string): string {
  return Buffer.from(`${queuedAt}:${id}`).toString('base64url');
}

function decodeCursor(cursor: string): { queuedAt: number; id: string } {
  const [at, id] = Buffer.from(cursor, 'base64url').toString('utf8').split(':');
  if (!at || !id || !/^\d+$/.test(at)) throw new HubError('BAD_REQUEST', 'Invalid cursor');
  return { queuedAt: Number(at), id };
}

export async function listJobs(
  db: Pool,
  caller: Caller,
  query: JobListQuery,
): Promise<{ jobs: JobSummary[]; next_cursor: string | null }> {
  const limit = query.limit === undefined ? JOB_LIST_LIMIT.default : Number(query.limit);
  if (limit < JOB_LIST_LIMIT.min || limit > JOB_LIST_LIMIT.max) {
    throw new HubError('BAD_REQUEST', `'limit' must be ${JOB_LIST_LIMIT.min}-${JOB_LIST_LIMIT.max}`);
  }
  const where = [ownedBy(caller)];
  if (query.state !== undefined) {
    const states = query.state.split(',').filter(Boolean);
    const bad = states.filter((s) => !(JOB_STATUSES as readonly string[]).includes(s));
    if (bad.length > 0 || states.length === 0) {
      throw new HubError('BAD_REQUEST', `Unknown state ${bad.join(', ')} (states: ${JOB_STATUSES.join(', ')})`);
    }
    where.push({ sql: `status IN (${states.map(() => '?').join(', ')})`, params: states });
  }
  if (query.target !== undefined) {
    // JSON arrays (this hub) and the original's comma-separated lists alike.
    where.push({
      sql: `(targets LIKE ? OR FIND_IN_SET(?, targets) > 0)`,
      params: [`%${JSON.stringify(query.target).replace(/[%_\\]/g, '\\$&')}%`, query.target],
    });
  }
  if (query.license !== undefined) {
    if (caller.kind !== 'admin') throw new HubError('FORBIDDEN', "Only the admin may filter by 'license'");
    where.push({ sql: 'licenseKey = ?', params: [query.license] });
  }
  if (query.tool !== undefined) {
    if (caller.kind !== 'admin') throw new HubError('FORBIDDEN', "Only the admin may filter by 'tool'");
    where.push({ sql: 'tool = ?', params: [query.tool] });
  }
  if (query.since !== undefined) where.push({ sql: 'queuedAt >= ?', params: [parseSince(query.since)] });
  if (query.cursor !== undefined) {
    const c = decodeCursor(query.cursor);
    where.push({ sql: '(queuedAt < ? OR (queuedAt = ? AND id < ?))', params: [c.queuedAt, c.queuedAt, c.id] });
  }
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT ${COLUMNS} FROM builds WHERE ${where.map((w) => w.sql).join(' AND ')}
     ORDER BY queuedAt DESC, id DESC LIMIT ?`,
    [...where.flatMap((w) => w.params), limit + 1],
  );
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    jobs: page.map(toSummary),
    next_cursor: rows.length > limit && last ? encodeCursor(Number(last['queuedAt'] ?? 0), String(last['id'])) : null,
  };
}

/** How many of the caller's jobs (all, for the admin) are in each state: one grouped query. */
export async function countJobs(db: Pool, caller: Caller, since: string | undefined): Promise<JobCountsResponse> {
  const where = [ownedBy(caller)];
  const sinceMs = since === undefined ? undefined : parseSince(since);
  if (sinceMs !== undefined) where.push({ sql: 'queuedAt >= ?', params: [sinceMs] });
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT status, COUNT(*) AS n FROM builds WHERE ${where.map((w) => w.sql).join(' AND ')} GROUP BY status`,
    where.flatMap((w) => w.params),
  );
  const states: Record<string, number> = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0]));
  let total = 0;
  for (const r of rows) {
    const n = Number(r['n']);
    const state = String(r['status']);
    // A state this hub does not know (an adopted row) counts as failed, as the list shows it.
    const key = (JOB_STATUSES as readonly string[]).includes(state) ? state : 'failed';
    states[key] = (states[key] ?? 0) + n;
    total += n;
  }
  return { since: sinceMs === undefined ? null : iso(sinceMs), total, states };
}

const MANIFEST_KEYS = ['app_name', 'bundle_id', 'version', 'entry'] as const;

function manifestSummary(text: unknown, fallbackTargets: string[]): JobDetail['manifest'] {
  let manifest: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(String(text ?? '{}'));
    if (parsed && typeof parsed === 'object') manifest = parsed as Record<string, unknown>;
  } catch {
    // an adopted row without a manifest
  }
  const pick = (key: string) => (typeof manifest[key] === 'string' ? (manifest[key] as string) : null);
  const targets = Array.isArray(manifest['targets']) ? manifest['targets'].map(String) : fallbackTargets;
  const [appName, bundleId, version, entry] = MANIFEST_KEYS.map(pick);
  return {
    app_name: appName ?? null,
    bundle_id: bundleId ?? null,
    version: version ?? null,
    entry: entry ?? null,
    targets,
  };
}

interface RawHistory {
  at: number;
  state: string;
  attempt?: number;
  stage?: string;
  worker?: string;
  workerId?: string;
  reason?: string;
  via?: string;
}

/** Rows written before the history column existed get what their timestamps tell. */
function historyOf(r: RowDataPacket, summary: JobSummary): RawHistory[] {
  try {
    const parsed: unknown = JSON.parse(String(r['history'] ?? 'null'));
    if (Array.isArray(parsed)) return parsed as RawHistory[];
  } catch {
    // fall through
  }
  const out: RawHistory[] = [{ at: Date.parse(summary.queued_at), state: 'queued' }];
  if (summary.started_at) out.push({ at: Date.parse(summary.started_at), state: 'running' });
  if (summary.finished_at) out.push({ at: Date.parse(summary.finished_at), state: summary.state });
  return out;
}

function toHistoryEntry(h: RawHistory): JobHistoryEntry {
  return {
    at: iso(Number(h.at)),
    state: String(h.state),
    ...(h.attempt !== undefined && h.attempt !== null ? { attempt: Number(h.attempt) } : {}),
    ...(h.stage ? { stage: String(h.stage) } : {}),
    ...(h.worker ? { worker: String(h.worker) } : {}),
    ...(h.workerId ? { worker_id: String(h.workerId) } : {}),
    ...(h.reason ? { reason: String(h.reason) } : {}),
    ...(h.via ? { via: String(h.via) } : {}),
  };
}

/** Each `running` entry opens an attempt; the next state change (other than a cancel request) closes it. */
export function attemptsOf(history: readonly RawHistory[]): JobAttempt[] {
  const attempts: JobAttempt[] = [];
  let open: JobAttempt | undefined;
  for (const h of history) {
    if (h.state === 'cancel_requested') continue;
    if (open) {
      open.ended_at = iso(Number(h.at));
      open.outcome = h.state === 'queued' ? 're-queued' : h.state;
      open.reason = h.reason ?? null;
      open = undefined;
    }
    if (h.state === 'running') {
      open = {
        attempt: Number(h.attempt ?? attempts.length + 1),
        stage: String(h.stage ?? 'build'),
        worker: String(h.worker ?? ''),
        worker_id: String(h.workerId ?? ''),
        started_at: iso(Number(h.at)),
        ended_at: null,
        outcome: 'running',
        reason: null,
      };
      attempts.push(open);
    }
  }
  return attempts;
}

/** One job with everything known about it; undefined when it does not exist or is not the caller's. */
export async function jobDetail(
  db: Pool,
  caller: Caller,
  jobId: string,
  /** PERRY_HUB_PUBLIC_URL: with it, artifacts still downloadable carry their link. */
  publicUrl?: string,
): Promise<Omit<JobDetail, 'position'> | undefined> {
  const owner = ownedBy(caller);
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT ${COLUMNS}, manifest, history, cancel_requested_at FROM builds WHERE id = ? AND ${owner.sql}`,
    [jobId, ...owner.params],
  );
  const r = rows[0];
  if (!r) return undefined;
  const summary = toSummary(r);
  const [artifactRows] = await db.query<RowDataPacket[]>(
    `SELECT token, held, name, target, size, sha256, attempt, state, created_at, expires_at FROM artifacts
     WHERE job_id = ? ORDER BY created_at, name`,
    [jobId],
  );
  const [callbackRows] = await db.query<RowDataPacket[]>(
    `SELECT id, kind, event_type, artifact_name, target, state, attempts, last_status, last_error, next_attempt_at,
       delivered_at FROM callback_deliveries WHERE job_id = ? ORDER BY seq`,
    [jobId],
  );
  const history = historyOf(r, summary);
  return {
    ...summary,
    cancel_requested_at: isoOrNull(r['cancel_requested_at']),
    manifest: manifestSummary(r['manifest'], summary.targets),
    history: history.map(toHistoryEntry),
    attempts: attemptsOf(history),
    artifacts: artifactRows.map((a): JobArtifact => ({
      name: String(a['name']),
      target: String(a['target']),
      size: Number(a['size']),
      sha256: String(a['sha256']),
      attempt: Number(a['attempt']),
      state: String(a['state']),
      created_at: iso(Number(a['created_at'])),
      expires_at: iso(Number(a['expires_at'])),
      ...(publicUrl !== undefined && !a['held'] && a['state'] !== 'done' && Number(a['expires_at']) > Date.now()
        ? { download_url: `${publicUrl.replace(/\/+$/, '')}/api/v1/dl/${String(a['token'])}` }
        : {}),
    })),
    ...(callbackRows.length > 0
      ? {
          callbacks: callbackRows.map((c) => ({
            webhook_id: String(c['id']),
            kind: c['kind'] === 'artifact' ? ('artifact' as const) : ('event' as const),
            event_type: strOrNull(c['event_type']),
            artifact_name: strOrNull(c['artifact_name']),
            target: strOrNull(c['target']),
            state: c['state'] === 'delivered' || c['state'] === 'failed' ? c['state'] : ('pending' as const),
            attempts: Number(c['attempts']),
            last_status: c['last_status'] === null ? null : Number(c['last_status']),
            last_error: strOrNull(c['last_error']),
            next_attempt_at: c['state'] === 'pending' ? iso(Number(c['next_attempt_at'])) : null,
            delivered_at: isoOrNull(c['delivered_at']),
          })),
        }
      : {}),
  };
}

/**
 * The job as `GET /api/v1/jobs/:id` and a tool's `status` answer it: the record, and while it is
 * queued its 1-based place as the scheduler counts it (0 when the scheduler does not answer).
 */
export async function readJob(
  deps: BusDeps & { db: Pool },
  caller: Caller,
  jobId: string,
  publicUrl?: string,
): Promise<JobDetail | undefined> {
  const detail = await jobDetail(deps.db, caller, jobId, publicUrl);
  if (!detail) return undefined;
  let position = 0;
  if (detail.state === 'queued') {
    position = await call(deps.nc, deps.subjects, queuePositionEndpoint, { jobId })
      .then((r) => r.position)
      .catch(() => 0);
  }
  return { ...detail, position };
}

/** Is the job the caller's (or is the caller the admin)? For the event stream. */
export async function jobState(db: Pool, caller: Caller, jobId: string): Promise<JobStatus | undefined> {
  const owner = ownedBy(caller);
  const [rows] = await db.query<RowDataPacket[]>(`SELECT status FROM builds WHERE id = ? AND ${owner.sql}`, [
    jobId,
    ...owner.params,
  ]);
  return rows[0] ? (String(rows[0]['status']) as JobStatus) : undefined;
}

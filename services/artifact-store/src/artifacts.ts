/**
 * Artifacts: metadata and one-time download tokens in MySQL, bytes in the Object Store. A token
 * is fresh until a download starts (claimed); until it expires it may be downloaded again, whole
 * or with HTTP Range, as long as no download completed; it is spent (done) once one did: a
 * further download gets 404. Artifacts
 * of `*-precompiled` targets are intermediates for the next stage: never announced to the CLI,
 * never downloadable, and promoted to the job's next input.
 */
import { randomUUID } from 'node:crypto';
import type { JetStreamClient } from '@nats-io/jetstream';
import {
  HELD_TARGETS,
  HubError,
  claimDownloadEndpoint,
  finishDownloadEndpoint,
  jobFinishedEndpoint,
  promoteEndpoint,
  registerArtifactEndpoint,
  renewDownloadsEndpoint,
  tarballObjectName,
  type ArtifactMeta,
  type Subjects,
} from '@perry-hub/contracts';
import { CoalescedUpdate, type Pool, type ResultSetHeader, type RowDataPacket } from '@perry-hub/db';
import {
  findAppend,
  handle,
  publishRetrying,
  type BlobStore,
  type BoundEndpoint,
  type Logger,
} from '@perry-hub/runtime';

export interface ArtifactDeps {
  db: Pool;
  blobs: BlobStore;
  js: JetStreamClient;
  subjects: Subjects;
  /** The stream of the job events (`topologyNames(prefix).eventsStream`). */
  eventsStream: string;
  log: Logger;
  publicUrl: string;
  artifactTtlSecs: number;
  /**
   * Announced marks, coalesced: a mark lost in a crash has the artifact announced again, found
   * already stored then (`announceArtifact`).
   */
  announced: CoalescedUpdate;
  now?: () => number;
}

/**
 * The marks of announced artifacts, written together within a second (one statement for every
 * artifact announced in it; the attempt check flushes them before it reads).
 */
export function announcedMarks(db: Pool, onError?: (err: unknown) => void): CoalescedUpdate {
  return new CoalescedUpdate(db, (tokens) => ['UPDATE artifacts SET announced = TRUE WHERE token IN (?)', [tokens]], {
    delayMs: 1_000,
    ...(onError ? { onError } : {}),
  });
}

/** How long a request waits for another transfer of its token to end (spent or released). */
const SPENDING_WAIT_MS = 2_000;
const SPENDING_POLL_MS = 25;
const NOT_FOUND = () => new HubError('ARTIFACT_NOT_FOUND', 'Artifact not found or expired');
const encoder = new TextEncoder();

/**
 * A job ended: its input goes now, with one purge and no read (the ingest put it under this fresh
 * name); its held intermediates (rare) with the next expiry pass, which finds them by their job's
 * state (most jobs have none: looking for them here was a statement per build). An input a NATS
 * client uploaded itself was renamed to this name and keeps its own chunk id: its meta record
 * goes here, its chunks, named by nothing then, with the orphan sweep. True if there was an input.
 */
export async function jobEnded(deps: Pick<ArtifactDeps, 'blobs'>, jobId: string): Promise<boolean> {
  return deps.blobs.purgeNamed(tarballObjectName(jobId)).then(
    (purged) => purged > 0,
    () => false,
  );
}

/** Job states nothing leaves. */
const ENDED = ['completed', 'failed', 'cancelled', 'expired'];

export interface Announced {
  token: string;
  jobId: string;
  target: string;
  name: string;
  size: number;
  sha256: string;
  expiresInSecs: number;
}

/**
 * Publish an artifact's artifact_ready (the original's, key order included: reference 1.2 #12),
 * then record it announced (coalesced with other marks). Stored once: its message id is its
 * token, and before a retry, or before anything when `again` (an earlier announcement may have
 * been stored: a retried registration, or a mark not recorded), the job's event log is searched
 * for it (see `appendOnce` for why a message id is not enough on a cluster).
 */
export async function announceArtifact(deps: ArtifactDeps, a: Announced, again = false): Promise<void> {
  const ready = {
    type: 'artifact_ready',
    job_id: a.jobId,
    target: a.target,
    artifact_name: a.name,
    artifact_size: a.size,
    sha256: a.sha256,
    download_url: `${deps.publicUrl.replace(/\/+$/, '')}/api/v1/dl/${a.token}`,
    expires_in_secs: a.expiresInSecs,
  };
  const subject = deps.subjects.jobEvents(a.jobId);
  const msgID = `artifact-ready:${a.token}`;
  const place = { stream: deps.eventsStream, barrier: deps.subjects.eventsBarrier, subject };
  await publishRetrying(deps.js, subject, encoder.encode(JSON.stringify(ready)), {
    msgID,
    stored: async () => findAppend(await deps.js.jetstreamManager(false), place, msgID),
    storedFirst: again,
  });
  deps.announced.add(a.token);
}

export function artifactEndpoints(deps: ArtifactDeps): BoundEndpoint[] {
  const now = deps.now ?? Date.now;
  const base = deps.publicUrl.replace(/\/+$/, '');
  const held = (target: string) => (HELD_TARGETS as readonly string[]).includes(target);

  const meta = (r: RowDataPacket): ArtifactMeta => ({
    objectName: String(r['object_name']),
    name: String(r['name']),
    size: Number(r['size']),
    sha256: String(r['sha256']),
    target: String(r['target']),
  });

  return [
    handle(registerArtifactEndpoint, async ({ jobId, attempt, artifact, retried, whileRunning }) => {
      const isHeld = held(artifact.target);
      const createdAt = now();
      const [known] = retried
        ? await deps.db.query<RowDataPacket[]>('SELECT token FROM artifacts WHERE object_name = ? AND job_id = ?', [
            artifact.objectName,
            jobId,
          ])
        : [[]];
      const token = known[0] ? String(known[0]['token']) : randomUUID();
      if (!known[0]) {
        // Recorded as not yet announced: a crash before its artifact_ready is published must not
        // let the build pass for delivered (attempts.ts announces it then).
        const values = [
          token,
          jobId,
          attempt,
          artifact.objectName,
          artifact.name,
          artifact.size,
          artifact.sha256,
          artifact.target,
          isHeld,
          createdAt,
          createdAt + deps.artifactTtlSecs * 1000,
        ];
        // In the same statement, checked against the job's row: its attempt is still this one
        // (a job assigned again meanwhile fences out the old attempt's upload), and, asked
        // `whileRunning`, that attempt still runs (nothing is recorded for an attempt that was
        // released or ended since its worker was given the grant). The row's stage is recorded
        // with it: the scheduler assigns a job again only if its attempt delivered nothing in it.
        const [inserted] = await deps.db.execute<ResultSetHeader>(
          `INSERT INTO artifacts (token, job_id, attempt, object_name, name, size, sha256, target, held, state,
             created_at, expires_at, announced, stage)
           SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, 'fresh', ?, ?, FALSE, stage FROM builds
            WHERE id = ? AND attempt = ?${whileRunning ? " AND status = 'running'" : ''}`,
          [...values, jobId, attempt],
        );
        if (inserted.affectedRows === 0) throw new HubError('JOB_NOT_RUNNING', 'Job is not in running state');
      }
      const downloadUrl = `${base}/api/v1/dl/${token}`;
      if (!isHeld) {
        // Announced once per artifact (deduplicated by token), also after a retried registration.
        const again = known[0] !== undefined;
        await announceArtifact(deps, { token, jobId, ...artifact, expiresInSecs: deps.artifactTtlSecs }, again);
      }
      return { token, download_url: downloadUrl, size: artifact.size, held: isHeld };
    }),

    // A download begins: the token is marked as in transfer, and spent by the transfer's end
    // (finish-download `sent`), not by its start. A transfer cut or failed releases it; one that
    // died with its instance leaves it in transfer, and a request meanwhile waits for that end:
    // spent, the token answers not found; still in transfer after the wait, it is served (a
    // client that got everything may fetch it once more, never is one that missed a byte refused).
    handle(claimDownloadEndpoint, async ({ token }) => {
      for (let waited = 0; ; waited += SPENDING_POLL_MS) {
        const at = now();
        const [taken] = await deps.db.execute<ResultSetHeader>(
          `UPDATE artifacts SET state = 'spending'
            WHERE token = ? AND held = FALSE AND expires_at > ? AND state = 'fresh'`,
          [token, at],
        );
        const [rows] = await deps.db.execute<RowDataPacket[]>(
          'SELECT * FROM artifacts WHERE token = ? AND held = FALSE AND expires_at > ?',
          [token, at],
        );
        const row = rows[0];
        if (!row || row['state'] === 'done') throw NOT_FOUND();
        if (taken.affectedRows > 0 || waited >= SPENDING_WAIT_MS) return meta(row);
        await new Promise((r) => setTimeout(r, SPENDING_POLL_MS));
      }
    }),

    handle(finishDownloadEndpoint, async ({ token, step, objectName, objectNuid }) => {
      if (step === 'last-byte') {
        await deps.db.query("UPDATE artifacts SET state = 'spending' WHERE token = ? AND state <> 'done'", [token]);
        return {};
      }
      if (step === 'released') {
        await deps.db.query("UPDATE artifacts SET state = 'fresh' WHERE token = ? AND state = 'spending'", [token]);
        return {};
      }
      // The caller names the object it served (from its claim): the row is not read again.
      let object = objectName;
      if (object === undefined) {
        const [rows] = await deps.db.query<RowDataPacket[]>('SELECT object_name FROM artifacts WHERE token = ?', [
          token,
        ]);
        if (!rows[0]) return {};
        object = String(rows[0]['object_name']);
      }
      // Spent, and the result reached its owner: a same submission builds anew from now on.
      const [spent] = await deps.db.execute<ResultSetHeader>(
        `UPDATE artifacts a LEFT JOIN builds b ON b.id = a.job_id
            SET a.state = 'done', b.result_delivery = 'delivered', b.submission_key = NULL
          WHERE a.token = ? AND a.object_name = ?`,
        [token, object],
      );
      if (spent.affectedRows === 0) return {};
      // Spent: the bytes can go now rather than at expiry (the caller's chunk id applies to the
      // object it named, not to one read from the row).
      const known = objectName !== undefined && objectNuid !== undefined ? { nuid: objectNuid } : undefined;
      await deps.blobs.delete(object, known).catch(() => false);
      return {};
    }),

    // A retried submission was given this finished job again: its links live another lifetime.
    handle(renewDownloadsEndpoint, async ({ jobId }) => {
      const at = now();
      const [r] = await deps.db.query<ResultSetHeader>(
        `UPDATE artifacts SET expires_at = GREATEST(expires_at, ?)
          WHERE job_id = ? AND held = FALSE AND state <> 'done' AND expires_at > ?`,
        [at + deps.artifactTtlSecs * 1000, jobId, at],
      );
      return { renewed: r.affectedRows };
    }),

    handle(promoteEndpoint, async ({ jobId, attempt }) => {
      const [rows] = await deps.db.query<RowDataPacket[]>(
        'SELECT * FROM artifacts WHERE job_id = ? AND attempt = ? ORDER BY created_at DESC, token LIMIT 1',
        [jobId, attempt],
      );
      const row = rows[0];
      if (!row) throw new HubError('NOT_FOUND', `No artifact was uploaded for job ${jobId}`);
      return { tarballRef: String(row['object_name']), target: String(row['target']) };
    }),

    // Asked by schedulers of earlier versions; the outcome on the bus does it now (jobEnded).
    handle(jobFinishedEndpoint, async ({ jobId }) => ({ deleted: (await jobEnded(deps, jobId)) ? 1 : 0 })),
  ];
}

/**
 * Expired and spent artifacts: bytes and rows; returns how many expired or spent ones went. A
 * spent one's bytes went when it was spent, so its row goes with every other spent one's in one
 * statement, without a message (bytes whose delete had failed then belong to no row, and go with
 * the sweep of such artifacts). A job whose artifact expired before anybody downloaded it is
 * marked `unfetched` (support refunds or rebuilds it). Each expired row is deleted by a
 * conditional statement, so a renewal that won the race keeps its artifact. Held intermediates
 * do not expire: they are the next stage's input however long it waits, and go here once their
 * job has ended. Bytes go with one purge each: the ingest stores artifacts under fresh names.
 */
export async function expireArtifacts(deps: Pick<ArtifactDeps, 'db' | 'blobs' | 'now'>, batch = 500): Promise<number> {
  const now = (deps.now ?? Date.now)();
  const [spent] = await deps.db.query<ResultSetHeader>(
    "DELETE FROM artifacts WHERE held = FALSE AND state = 'done' LIMIT ?",
    [batch],
  );
  let expired = spent.affectedRows;
  const [rows] = await deps.db.query<RowDataPacket[]>(
    `SELECT a.token, a.job_id, a.object_name, a.held FROM artifacts a
      WHERE (a.held = FALSE AND a.expires_at <= ? AND a.state <> 'done')
         OR (a.held = TRUE AND EXISTS (SELECT 1 FROM builds b WHERE b.id = a.job_id AND b.status IN (?)))
      LIMIT ?`,
    [now, ENDED, batch],
  );
  for (const r of rows) {
    const name = String(r['object_name']);
    if (r['held']) {
      // The job ended (a terminal state is final): nothing will read its intermediate again.
      await deps.db.query('DELETE FROM artifacts WHERE token = ? AND held = TRUE', [r['token']]);
      await deps.blobs.purgeNamed(name).catch(() => 0);
      continue;
    }
    const [gone] = await deps.db.query<ResultSetHeader>(
      "DELETE FROM artifacts WHERE token = ? AND (expires_at <= ? OR state = 'done')",
      [r['token'], now],
    );
    if (gone.affectedRows !== 1) continue;
    expired += 1;
    await deps.blobs.purgeNamed(name).catch(() => 0);
    await deps.db.query(
      "UPDATE builds SET result_delivery = 'unfetched', submission_key = NULL WHERE id = ? AND result_delivery IS NULL",
      [r['job_id']],
    );
  }
  return expired;
}

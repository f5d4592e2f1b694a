/**
 * Reconciles the blobs bucket with MySQL, for what a crash leaves behind: a tarball whose job
 * record never appeared (the intake died between storing it and recording the job), an upload
 * of a NATS client that was never submitted, an artifact no row names (its registration never
 * happened, or its delete failed when its link was spent), and chunks no object names: those of
 * a put that never finished (the Object Store writes an object's meta last, so those are
 * invisible but take space), and those of a tarball a NATS client stored itself
 * (`tarball_object`, renamed to the job's tarball, so it keeps its own chunk id), whose meta
 * record went when its job ended.
 * Only things older than the grace period are touched: an intake in progress is never raced.
 * Tombstones (the records of deleted objects that earlier versions and other clients write) go
 * at any age: each is purged up to its own sequence, so an object put under its name since stays.
 */
import { ARTIFACT_PREFIX, TARBALL_PREFIX, UPLOAD_PREFIX } from '@perry-hub/contracts';
import type { Pool, RowDataPacket } from '@perry-hub/db';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { BlobStore, Logger, ObjectInfo } from '@perry-hub/runtime';

export interface SweepDeps {
  db: Pool;
  blobs: BlobStore;
  jsm: JetStreamManager;
  log: Logger;
}

export interface SweepResult {
  tarballs: number;
  uploads: number;
  artifacts: number;
  chunkSets: number;
  tombstones: number;
}

const BATCH = 500;

/** Which of `values` are in `table.column`, in batches. */
async function existing(
  db: Pool,
  table: 'builds' | 'artifacts',
  column: string,
  values: string[],
): Promise<Set<string>> {
  const found = new Set<string>();
  for (let i = 0; i < values.length; i += BATCH) {
    const batch = values.slice(i, i + BATCH);
    const [rows] = await db.query<RowDataPacket[]>(`SELECT ${column} AS v FROM ${table} WHERE ${column} IN (?)`, [
      batch,
    ]);
    for (const r of rows) found.add(String(r['v']));
  }
  return found;
}

/**
 * Purge chunk sets that no live object names and that were last written before `olderThan` (a
 * put in progress keeps writing, so its chunks stay younger). Returns how many sets were removed.
 */
async function sweepOrphanChunks({ blobs, jsm }: SweepDeps, live: ObjectInfo[], olderThan: Date): Promise<number> {
  const prefix = blobs.chunkSubjectPrefix;
  const si = await jsm.streams.info(blobs.streamName, { subjects_filter: `${prefix}>` });
  const subjects = Object.keys(si.state.subjects ?? {});
  if (subjects.length === 0) return 0;
  const named = new Set(live.map((o) => o.nuid));
  let swept = 0;
  for (const subject of subjects.filter((s) => !named.has(s.slice(prefix.length)))) {
    const last = await jsm.streams.getMessage(blobs.streamName, { last_by_subj: subject });
    if (!last || last.time > olderThan) continue;
    await jsm.streams.purge(blobs.streamName, { filter: subject });
    swept++;
  }
  return swept;
}

export async function sweepOrphans(deps: SweepDeps, graceMs: number, now = Date.now()): Promise<SweepResult> {
  const cutoff = now - graceMs;
  const old = (mtime: string) => Date.parse(mtime) <= cutoff;
  // One pass over the bucket's meta records serves every step.
  const entries = await deps.blobs.entries();
  const live = entries.filter((o) => !o.deleted);

  const tarballs = live.filter((o) => o.name.startsWith(TARBALL_PREFIX) && old(o.mtime));
  const jobs = await existing(
    deps.db,
    'builds',
    'id',
    tarballs.map((o) => o.name.slice(TARBALL_PREFIX.length)),
  );
  const gone = new Set<ObjectInfo>();
  let removedTarballs = 0;
  for (const o of tarballs) {
    if (jobs.has(o.name.slice(TARBALL_PREFIX.length))) continue;
    if (await deps.blobs.delete(o.name, o)) removedTarballs++;
    gone.add(o);
  }
  let removedUploads = 0;
  for (const o of live.filter((o) => o.name.startsWith(UPLOAD_PREFIX) && old(o.mtime))) {
    if (await deps.blobs.delete(o.name, o)) removedUploads++;
    gone.add(o);
  }
  // Artifacts no row names: a spent link's bytes whose delete failed (spent rows go without
  // another look), or an upload whose registration never happened (the ingest died meanwhile).
  const artifacts = live.filter((o) => o.name.startsWith(ARTIFACT_PREFIX) && old(o.mtime));
  const recorded = await existing(
    deps.db,
    'artifacts',
    'object_name',
    artifacts.map((o) => o.name),
  );
  let removedArtifacts = 0;
  for (const o of artifacts) {
    if (recorded.has(o.name)) continue;
    if (await deps.blobs.delete(o.name, o)) removedArtifacts++;
    gone.add(o);
  }
  const chunkSets = await sweepOrphanChunks(
    deps,
    live.filter((o) => !gone.has(o)),
    new Date(cutoff),
  );
  // Deleted objects' records, as earlier versions (and other clients) left them: the bucket's
  // history would otherwise grow without end, and with it every pass over it.
  let tombstones = 0;
  for (const o of entries.filter((o) => o.deleted)) {
    await deps.blobs.dropTombstone(o);
    tombstones++;
  }
  const result = {
    tarballs: removedTarballs,
    uploads: removedUploads,
    artifacts: removedArtifacts,
    chunkSets,
    tombstones,
  };
  if (Object.values(result).some((n) => n > 0)) deps.log.info(result, 'swept orphaned blobs');
  return result;
}

/** Runs the sweep every `intervalMs` (never two at once); `stop()` waits for a running one. */
export function startSweeper(deps: SweepDeps, options: { intervalMs: number; graceMs: number }) {
  let running: Promise<unknown> = Promise.resolve();
  let busy = false;
  const tick = () => {
    if (busy) return;
    busy = true;
    running = sweepOrphans(deps, options.graceMs)
      .catch((err: unknown) => deps.log.warn({ err }, 'orphan sweep failed; retrying next interval'))
      .finally(() => (busy = false));
  };
  const timer = setInterval(tick, options.intervalMs);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}

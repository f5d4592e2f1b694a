/**
 * Surviving a crash of the whole hub without charging a build nobody receives:
 * - `builds.submission_key`: the digest of who submitted what (or of an explicit idempotency
 *   key). A unique index makes identical concurrent submissions one job; a key is released
 *   (set to NULL) once its job's result was delivered, so the same submission then builds again.
 * - `builds.result_delivery`: NULL while nobody fetched the result, `delivered` after a complete
 *   download, `unfetched` when its artifacts expired unfetched (support refunds or rebuilds).
 * - `submissions.expires_at`: the latest a reservation's request can still write its job row;
 *   after it, a reservation without a row is released by the license service's sweep.
 */
import type { MigrationStep } from './steps.js';

export const name = 'delivery';

export const statements: MigrationStep[] = [
  { addColumn: { table: 'builds', column: 'submission_key', definition: 'CHAR(64) NULL' } },
  { addColumn: { table: 'builds', column: 'result_delivery', definition: 'VARCHAR(12) NULL' } },
  {
    addIndex: { table: 'builds', index: 'uq_builds_submission_key', definition: '(submission_key)', unique: true },
  },
  { addColumn: { table: 'submissions', column: 'expires_at', definition: 'BIGINT NULL' } },
  { addIndex: { table: 'submissions', index: 'idx_submissions_pending', definition: '(state, expires_at)' } },
];

/**
 * What operators read about a job:
 * - `builds.history`: its state changes with timestamps, a JSON array appended to by the same
 *   statement that makes each change (no extra round trip, and a change that did not happen is
 *   never recorded). Entries: `{"at", "state", "attempt"?, "worker"?, "workerId"?, "stage"?, "reason"?}`.
 *   A TEXT column read with JSON functions, so MySQL 8 and MariaDB store it alike.
 * - indexes for the newest-first job lists, overall and per license or account.
 */
import type { MigrationStep } from './steps.js';

export const name = 'operations';

export const statements: MigrationStep[] = [
  { addColumn: { table: 'builds', column: 'history', definition: 'MEDIUMTEXT NULL' } },
  { addIndex: { table: 'builds', index: 'idx_builds_recent', definition: '(queuedAt, id)' } },
  { addIndex: { table: 'builds', index: 'idx_builds_license_recent', definition: '(licenseKey, queuedAt)' } },
  { addIndex: { table: 'builds', index: 'idx_builds_account_recent', definition: '(account_id, queuedAt)' } },
];

/**
 * What a crash of the hub may leave half done:
 * - `submissions.instance_id`: the ingest instance holding the request that made a reservation.
 *   When that instance is known dead (its liveness record expired or deleted, or the all-in-one
 *   restarted over it), its reservations without a job row are released at once instead of at
 *   their request's deadline.
 * - `artifacts.announced`: whether the artifact's artifact_ready reached the job's event log. A
 *   build whose upload was recorded but not announced when the hub died is announced when its
 *   attempt is looked at, instead of completing without an artifact for its CLI. Rows from
 *   before were announced.
 */
import type { MigrationStep } from './steps.js';

export const name = 'crash_leftovers';

export const statements: MigrationStep[] = [
  { addColumn: { table: 'submissions', column: 'instance_id', definition: 'VARCHAR(128) NULL' } },
  { addColumn: { table: 'artifacts', column: 'announced', definition: 'BOOLEAN NOT NULL DEFAULT TRUE' } },
];

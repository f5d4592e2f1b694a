/**
 * `submissions.instance_id`: the ingest instance holding the request that made a reservation.
 * When that instance is known dead (its liveness record expired or deleted, or the all-in-one
 * restarted over it), its reservations without a job row are released at once instead of at
 * their request's deadline.
 */
import type { MigrationStep } from './steps.js';

export const name = 'reservation_instance';

export const statements: MigrationStep[] = [
  { addColumn: { table: 'submissions', column: 'instance_id', definition: 'VARCHAR(128) NULL' } },
];

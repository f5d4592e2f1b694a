/**
 * What the services need beyond the original tables: the job lifecycle on `builds` (the
 * scheduler moves state by compare-and-set with `attempt` as the fencing token), encrypted
 * credentials, and idempotent submission.
 */
import type { MigrationStep } from './steps.js';

export const name = 'job_lifecycle';

const col = (column: string, definition: string): MigrationStep => ({
  addColumn: { table: 'builds', column, definition },
});

export const statements: MigrationStep[] = [
  col('manifest', 'MEDIUMTEXT NULL'),
  col('credentials_enc', 'MEDIUMBLOB NULL'),
  col('priority', 'INT NOT NULL DEFAULT 1'),
  col('attempt', 'INT NOT NULL DEFAULT 0'),
  col('stage', "VARCHAR(16) NOT NULL DEFAULT 'build'"),
  col('tarball_ref', 'VARCHAR(255) NULL'),
  col('worker_id', 'VARCHAR(64) NULL'),
  col('account_id', 'VARCHAR(36) NULL'),
  col('idempotency_key', 'VARCHAR(128) NULL'),
  col('assigned_at', 'BIGINT NULL'),
  col('heartbeat_at', 'BIGINT NULL'),
  col('updated_at', 'BIGINT NULL'),
  { addIndex: { table: 'builds', index: 'idx_builds_queue', definition: '(status, priority, queuedAt)' } },
  {
    addIndex: {
      table: 'builds',
      index: 'uq_builds_idempotency',
      definition: '(licenseKey, idempotency_key)',
      unique: true,
    },
  },
];

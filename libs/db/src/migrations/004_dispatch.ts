/**
 * Dispatch: per-attempt job tokens (only their hash is stored), retry counts, the completion
 * outbox (the wire messages a terminal transition must publish, kept until they are published so
 * a crash between the state change and the publish loses nothing), and artifacts with their
 * one-time download tokens.
 */
import type { MigrationStep } from './steps.js';

export const name = 'dispatch';

const col = (column: string, definition: string): MigrationStep => ({
  addColumn: { table: 'builds', column, definition },
});

export const statements: MigrationStep[] = [
  col('job_token_hash', 'CHAR(64) NULL'),
  col('retries', 'INT NOT NULL DEFAULT 0'),
  col('final_events', 'MEDIUMTEXT NULL'),
  col('done_published_at', 'BIGINT NULL'),
  col('cancel_requested_at', 'BIGINT NULL'),
  { addIndex: { table: 'builds', index: 'idx_builds_outbox', definition: '(done_published_at, status)' } },
  `CREATE TABLE IF NOT EXISTS artifacts (
    token CHAR(36) NOT NULL PRIMARY KEY,
    job_id CHAR(36) NOT NULL,
    attempt INT NOT NULL,
    object_name VARCHAR(255) NOT NULL,
    name VARCHAR(255) NOT NULL,
    size BIGINT NOT NULL,
    sha256 CHAR(64) NOT NULL,
    target VARCHAR(64) NOT NULL,
    held BOOLEAN NOT NULL DEFAULT FALSE,
    state VARCHAR(8) NOT NULL DEFAULT 'fresh',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    INDEX idx_artifacts_job (job_id, created_at),
    INDEX idx_artifacts_expiry (expires_at)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
];

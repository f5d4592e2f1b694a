/**
 * What the license service needs beyond the original tables: one row per accepted submission
 * (hourly limits, builds in flight against the monthly quota, and the device binding it made,
 * all in MySQL so that several instances agree), and the job ids already counted as publishes
 * (a redelivered completion event must not count twice).
 */
import type { MigrationStep } from './steps.js';

export const name = 'license_usage';

export const statements: MigrationStep[] = [
  `CREATE TABLE IF NOT EXISTS submissions (
    job_id CHAR(36) NOT NULL PRIMARY KEY,
    license_key VARCHAR(64) NOT NULL,
    account_id VARCHAR(36) NULL,
    submitted_at BIGINT NOT NULL,
    state VARCHAR(12) NOT NULL DEFAULT 'pending',
    outcome VARCHAR(16) NULL,
    bound_project TINYINT(1) NOT NULL DEFAULT 0,
    INDEX idx_submissions_license (license_key, submitted_at)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS usage_events (
    job_id CHAR(36) NOT NULL PRIMARY KEY,
    license_key VARCHAR(64) NOT NULL,
    period VARCHAR(7) NOT NULL,
    outcome VARCHAR(16) NOT NULL,
    counted_at BIGINT NOT NULL
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  { addIndex: { table: 'licenses', index: 'idx_licenses_account', definition: '(account_id, createdAt)' } },
];

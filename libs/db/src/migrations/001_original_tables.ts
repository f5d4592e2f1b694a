/**
 * The original hub's tables (reference Appendix A), unchanged, so an existing `perry_hub`
 * database is adopted in place: every statement is a no-op where the table already exists.
 */
export const name = 'original_tables';

export const statements = [
  `CREATE TABLE IF NOT EXISTS licenses (
    licenseKey VARCHAR(64) NOT NULL PRIMARY KEY,
    tier VARCHAR(8) DEFAULT 'free',
    githubUsername VARCHAR(255),
    platforms TEXT,
    createdAt BIGINT,
    notes TEXT,
    account_id VARCHAR(36) NULL,
    device_bound BOOLEAN DEFAULT FALSE,
    project_bundle_id VARCHAR(255) NULL
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS builds (
    id CHAR(36) NOT NULL PRIMARY KEY,
    licenseKey VARCHAR(64),
    tier VARCHAR(8),
    targets TEXT,
    status VARCHAR(20),
    queuedAt BIGINT,
    startedAt BIGINT,
    completedAt BIGINT,
    durationSecs INT,
    workerName VARCHAR(255),
    errorMessage TEXT,
    INDEX idx_builds_licenseKey (licenseKey)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS accounts (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    github_username VARCHAR(255),
    github_id VARCHAR(64) UNIQUE,
    email VARCHAR(255),
    tier VARCHAR(8) DEFAULT 'free',
    polar_customer_id VARCHAR(255),
    polar_subscription_id VARCHAR(255),
    api_token VARCHAR(64) UNIQUE,
    has_payment_method BOOLEAN DEFAULT FALSE,
    created_at BIGINT
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS usage_counters (
    license_key VARCHAR(64) NOT NULL,
    period VARCHAR(7) NOT NULL,
    publishes INT DEFAULT 0,
    deep_verifies INT DEFAULT 0,
    PRIMARY KEY (license_key, period)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
];

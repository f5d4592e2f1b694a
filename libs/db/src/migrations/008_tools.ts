/**
 * Tools as users of the hub:
 * - `builds.build_type`: `app` or `plugin` (manifest `build_type`). The scheduler reads it with
 *   the row, so a plugin job is never re-queued to a sign stage, also after a restart.
 * - `tools`: one identity per tool (`perry-hub tools add`), bound to a license or an account. Only
 *   the NATS user's public key is kept; the webhook secret is kept because the hub signs with it.
 * - `builds.tool`: the tool that submitted the job (its jobs are all it may see and act on).
 * - `builds.callback_url`: where the job's signed callbacks go (the submission's, else the tool's).
 * - `callback_deliveries`: the durable queue of signed callbacks, in order per job (`seq`); `id` is
 *   the `webhook-id`, the same on every retry; a claim (`lease_until`) keeps two ingest instances
 *   from sending one at the same time, and lapses when the instance dies.
 */
import type { MigrationStep } from './steps.js';

export const name = 'tools';

export const statements: MigrationStep[] = [
  { addColumn: { table: 'builds', column: 'build_type', definition: "VARCHAR(16) NOT NULL DEFAULT 'app'" } },
  `CREATE TABLE IF NOT EXISTS tools (
    name VARCHAR(48) PRIMARY KEY,
    nkey_public VARCHAR(64) NOT NULL,
    license_key VARCHAR(64) NULL,
    account_id VARCHAR(64) NULL,
    webhook_secret VARCHAR(128) NOT NULL,
    callback_url VARCHAR(2048) NULL,
    created_at BIGINT NOT NULL,
    rotated_at BIGINT NULL
  )`,
  { addColumn: { table: 'builds', column: 'tool', definition: 'VARCHAR(48) NULL' } },
  { addIndex: { table: 'builds', index: 'idx_builds_tool', definition: '(tool, queuedAt)' } },
  { addColumn: { table: 'builds', column: 'callback_url', definition: 'VARCHAR(2048) NULL' } },
  `CREATE TABLE IF NOT EXISTS callback_deliveries (
    id VARCHAR(64) PRIMARY KEY,
    job_id VARCHAR(64) NOT NULL,
    seq INT NOT NULL,
    kind VARCHAR(16) NOT NULL,
    url VARCHAR(2048) NOT NULL,
    tool VARCHAR(48) NULL,
    event_type VARCHAR(32) NULL,
    body MEDIUMTEXT NULL,
    object_name VARCHAR(255) NULL,
    artifact_name VARCHAR(255) NULL,
    target VARCHAR(64) NULL,
    size BIGINT NULL,
    sha256 CHAR(64) NULL,
    state VARCHAR(16) NOT NULL DEFAULT 'pending',
    attempts INT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT NULL,
    last_status INT NULL,
    last_error VARCHAR(500) NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT NULL,
    UNIQUE KEY uq_callback_job_seq (job_id, seq),
    KEY idx_callback_due (state, next_attempt_at)
  )`,
];

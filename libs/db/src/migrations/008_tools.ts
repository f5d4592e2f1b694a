/**
 * Tools as users of the hub:
 * - `builds.build_type`: `app` or `plugin` (manifest `build_type`). The scheduler reads it with
 *   the row, so a plugin job is never re-queued to a sign stage, also after a restart.
 * - `tools`: one identity per tool (`perry-hub tools add`), bound to a license or an account. Only
 *   the NATS user's public key is kept; the webhook secret is kept because the hub signs with it.
 * - `builds.tool`: the tool that submitted the job (its jobs are all it may see and act on).
 * - `builds.callback_url`: where the job's signed callbacks go (the submission's, else the tool's).
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
];

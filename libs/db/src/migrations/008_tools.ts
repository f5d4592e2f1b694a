/**
 * Tools as users of the hub:
 * - `builds.build_type`: `app` or `plugin` (manifest `build_type`). The scheduler reads it with
 *   the row, so a plugin job is never re-queued to a sign stage, also after a restart.
 */
import type { MigrationStep } from './steps.js';

export const name = 'tools';

export const statements: MigrationStep[] = [
  { addColumn: { table: 'builds', column: 'build_type', definition: "VARCHAR(16) NOT NULL DEFAULT 'app'" } },
];

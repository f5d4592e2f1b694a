import * as m001 from './001_original_tables.js';
import * as m002 from './002_job_lifecycle.js';
import * as m003 from './003_license_usage.js';
import * as m004 from './004_dispatch.js';
import * as m005 from './005_delivery.js';
import * as m006 from './006_operations.js';
import * as m007 from './007_crash_leftovers.js';
import * as m008 from './008_tools.js';
import * as m009 from './009_license_procedures.js';
import * as m010 from './010_artifact_stage.js';
import type { MigrationStep } from './steps.js';

export type { MigrationStep } from './steps.js';

export interface Migration {
  readonly version: number;
  readonly name: string;
  /** Each step must be safe to run again: DDL commits implicitly, so a crash mid-way re-runs it. */
  readonly statements: readonly MigrationStep[];
}

/** In order. Append only: a released migration never changes. */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, ...m001 },
  { version: 2, ...m002 },
  { version: 3, ...m003 },
  { version: 4, ...m004 },
  { version: 5, ...m005 },
  { version: 6, ...m006 },
  { version: 7, ...m007 },
  { version: 8, ...m008 },
  { version: 9, ...m009 },
  { version: 10, ...m010 },
];

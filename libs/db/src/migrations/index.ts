import * as m001 from './001_original_tables.js';

export interface Migration {
  readonly version: number;
  readonly name: string;
  /** Each statement must be safe to run again: DDL commits implicitly, so a crash mid-way re-runs it. */
  readonly statements: readonly string[];
}

/** In order. Append only: a released migration never changes. */
export const MIGRATIONS: readonly Migration[] = [{ version: 1, ...m001 }];

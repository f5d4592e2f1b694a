/**
 * `artifacts.stage`: the stage of the job (`build` or `sign`) the artifact was uploaded in, taken
 * from the job's row by the statement that records it. A job is assigned again only if the
 * attempt it is leaving delivered nothing in its stage (`builds` compare-and-set in the
 * scheduler's store): a build whose worker was lost after its upload was announced is completed
 * from that upload, never run again to announce a second artifact, whatever the hub could or
 * could not ask at the moment it lost the worker. Artifacts from before have none: they fence
 * nothing.
 */
import type { MigrationStep } from './steps.js';

export const name = 'artifact_stage';

export const statements: MigrationStep[] = [
  { addColumn: { table: 'artifacts', column: 'stage', definition: 'VARCHAR(16) NULL' } },
];

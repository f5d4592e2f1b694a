/** The reference Perry Hub worker, as a library (and the `perry-hub worker` command's `main`). */
export { main, USAGE } from './main.js';
export { Worker, startWorker, type WorkerExit, type WorkerOptions } from './worker.js';
export {
  DEFAULT_COMPILE,
  VARIABLES,
  WorkerConfigError,
  defaultName,
  loadWorkerConfig,
  targetConfig,
  variablesTable,
  type TargetConfig,
  type WorkerConfig,
} from './config.js';
export { createWorkerLogger } from './log.js';
export { TarballError, entryProblem, extractTarball } from './tarball.js';
export { parseLine, runCommand, type OutputEvent, type RunOutcome } from './run.js';
export * as wire from './wire.js';

/** `perry-hub worker` / `perry-hub-worker`: parse the command line, check the setup, run. */
import { accessSync, constants, mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { HUB_VERSION } from '@perry-hub/contracts';
import { VARIABLES, WorkerConfigError, loadWorkerConfig } from './config.js';
import { createWorkerLogger } from './log.js';
import { startWorker } from './worker.js';

type Env = Readonly<Record<string, string | undefined>>;

const pad = (s: string, n: number) => (s.length >= n ? `${s}\n${' '.repeat(n + 2)}` : s.padEnd(n + 2));

export const USAGE = `perry-hub worker ${HUB_VERSION}: the reference build worker

Connects to a Perry Hub, takes build jobs for its targets and runs a command for each:
by default the Perry compiler (perry compile <entry> --target <target>).

Usage:
  perry-hub worker [--once] [--config FILE]
  perry-hub-worker [--once] [--config FILE]

Options:
  --once          Take one job, deliver it, then exit (an ephemeral worker)
  --config FILE   JSON file with per-target commands and artifacts (or PERRY_WORKER_CONFIG)
  -h, --help      This text
  -v, --version   The version

Environment (the Rust workers' names where they have one):
${VARIABLES.map(([k, d, what]) => `  ${pad(k, 38)}${what} [${d}]`).join('\n')}

A build command runs with sh -c in the unpacked project, with PERRY_JOB_ID, PERRY_TARGET,
PERRY_ENTRY, PERRY_APP_NAME, PERRY_BUILD_TYPE, PERRY_OUTPUT_DIR, PERRY_MANIFEST_FILE,
PERRY_MANIFEST_<FIELD> and, when the job has signing credentials, PERRY_CREDENTIALS_FILE (mode
0600, deleted with the job). Lines '::stage <name> [message]' and '::progress <0-100>' report
progress; every other line is a log line. Files under $PERRY_OUTPUT_DIR matching the artifact
patterns are uploaded.
`;

/** Exit codes: 0 done, 2 bad command line or configuration, 3 refused by the hub (1 stays a crash). */
export async function main(
  argv: readonly string[],
  env: Env = process.env,
  out: NodeJS.WritableStream = process.stdout,
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: false,
      options: {
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        once: { type: 'boolean' },
        config: { type: 'string' },
      },
    });
  } catch (err) {
    out.write(`perry-hub worker: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.values.help) {
    out.write(USAGE);
    return 0;
  }
  if (parsed.values.version) {
    out.write(`${HUB_VERSION}\n`);
    return 0;
  }
  let config;
  try {
    config = loadWorkerConfig(env, parsed.values.config);
  } catch (err) {
    if (err instanceof WorkerConfigError) {
      out.write(`perry-hub worker: ${err.message}\n(see perry-hub worker --help)\n`);
      return 2;
    }
    throw err;
  }
  try {
    mkdirSync(config.workDir, { recursive: true, mode: 0o700 });
    accessSync(config.workDir, constants.W_OK);
  } catch (err) {
    out.write(
      `perry-hub worker: the work directory ${config.workDir} is not writable (PERRY_WORKER_WORK_DIR): ${(err as Error).message}\n`,
    );
    return 2;
  }
  const log = createWorkerLogger(config.logLevel);
  const worker = await startWorker({ config, log, once: parsed.values.once === true });
  log.info(
    {
      hub: config.hubUrl,
      name: config.name,
      capabilities: config.capabilities,
      maxConcurrent: config.maxConcurrent,
      perryVersion: worker.perryVersion ?? null,
      once: parsed.values.once === true,
    },
    'perry-hub worker started',
  );
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) process.exit(130);
    log.info({ signal }, 'stopping: running builds are handed back to the hub (again to exit now)');
    void worker.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const exit = await worker.exited;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (exit.kind === 'refused') {
    out.write(`perry-hub worker: ${exit.message}\n`);
    return 3;
  }
  return 0;
}

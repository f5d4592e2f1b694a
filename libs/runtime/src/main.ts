/**
 * The body of every service's `src/main.ts`: parse the environment it is handed, check its ports
 * and wait for NATS (and MySQL) to answer, launch, and stop in order on SIGINT/SIGTERM. Only
 * composition roots call this, with `process.env`. Exit codes: 2 for a configuration problem
 * (a bad value, a port in use), 1 for a failure at start, 0 after an orderly stop.
 */
import type { Static, TObject } from 'typebox';
import { ConfigError, loadConfig, redactConfig } from './config.js';
import { createLogger, type LogFormat } from './logger.js';
import { exitOnUncaught, onShutdownSignal } from './lifecycle.js';
import { dependenciesOf, listenClaims, takenPorts, waitUntilReachable } from './preflight.js';
import { launchService, type BaseConfig, type ServiceDefinition } from './service.js';
import { ProcessOps, serveOps } from './ops.js';

export async function runServiceMain<C extends TObject>(
  definition: ServiceDefinition<C>,
  env: Readonly<Record<string, string | undefined>>,
): Promise<void> {
  const who = `perry-hub ${definition.name}`;
  let config: Static<C> &
    BaseConfig & {
      logLevel: string;
      logFormat?: LogFormat;
      metricsPort: number;
      metricsHost: string;
      eventLoopSampleMs: number;
    };
  try {
    config = loadConfig(definition.config, env) as typeof config;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${who}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const taken = await takenPorts(listenClaims(definition.config, config));
  if (taken.length > 0) {
    process.stderr.write(`${who}: ${new ConfigError(taken).message}\n`);
    process.exit(2);
  }
  const log = createLogger({ level: config.logLevel, format: config.logFormat ?? 'auto', name: 'perry-hub' });
  exitOnUncaught(log);
  log.info({ service: definition.name, config: redactConfig(definition.config, config) }, 'configuration');
  const waiting = new AbortController();
  const abort = () => waiting.abort();
  process.once('SIGINT', abort).once('SIGTERM', abort);
  const reachable = await waitUntilReachable(
    dependenciesOf(definition.needsDb ? config : { natsUrl: config.natsUrl }),
    { log, out: process.stderr, signal: waiting.signal, who },
  );
  process.off('SIGINT', abort).off('SIGTERM', abort);
  if (!reachable) {
    process.stderr.write(`${who}: stopped before it started\n`);
    log.flush();
    process.exitCode = 1;
    return;
  }
  try {
    // A service run alone serves /metrics, /healthz and /readyz on its own port (the ingest also on
    // its HTTP port), from before it starts: /readyz answers 503 until it is up.
    const ops = new ProcessOps({ eventLoopSampleMs: config.eventLoopSampleMs });
    const opsServer = config.metricsPort > 0 ? await serveOps(ops, config.metricsPort, config.metricsHost) : undefined;
    if (opsServer) log.info({ port: opsServer.port }, 'metrics and health on /metrics, /healthz, /readyz');
    try {
      const service = await launchService(definition, config, log, { ops });
      onShutdownSignal(() => service.stop(), log);
      await service.stopped;
    } finally {
      await opsServer?.close();
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      // E.g. a NATS seed file that is missing or too widely readable: a message, not a stack.
      log.fatal({ problems: err.problems }, 'invalid configuration');
      process.stderr.write(`${who}: ${err.message}\n`);
      log.flush();
      process.exitCode = 2;
      return;
    }
    log.fatal({ err }, 'service failed to start');
    log.flush();
    process.exitCode = 1;
  }
}

/** Command-line dispatch for `perry-hub`. */
import { parseArgs } from 'node:util';
import { HUB_VERSION, SERVICE_NAMES } from '@perry-hub/contracts';
import { ConfigError, configSchema, createLogger, loadConfig, natsFields, onShutdownSignal } from '@perry-hub/runtime';
import { CliConfig, configTable } from './config.js';
import { startLocalStack } from './local.js';
import { checkNatsConfigFile, renderDeploymentAccounts } from './nats-config.js';
import { runStart } from './start.js';

type Env = Readonly<Record<string, string | undefined>>;

export const USAGE = `perry-hub ${HUB_VERSION}: the Perry build-dispatch hub

Usage:
  perry-hub start                 Run all six services in one process. Starts a local
                                  nats-server and MariaDB (data in PERRY_HUB_DATA_DIR) unless
                                  PERRY_HUB_NATS_URL / PERRY_DB_HOST point elsewhere.
  perry-hub start <service>...    Run only these services against the configured NATS and MySQL.
  perry-hub infra                 Run only the local nats-server and MariaDB, and print the
                                  variables that point services at them.
  perry-hub config [--markdown]   List every configuration variable with its default.
  perry-hub nats-config           Print the nats-server accounts block (users, permissions) for
                                  the seed files in PERRY_HUB_NATS_CREDENTIALS_DIR.
  perry-hub nats-config --check FILE
                                  Check a nats-server config: users only inside accounts.
  perry-hub --help | --version

Services: ${SERVICE_NAMES.join(', ')}

Configuration comes from environment variables; see 'perry-hub config'.
`;

export async function main(
  argv: readonly string[],
  env: Env,
  out: NodeJS.WritableStream = process.stdout,
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        markdown: { type: 'boolean' },
        check: { type: 'string' },
      },
    });
  } catch (err) {
    out.write(`perry-hub: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const [command, ...rest] = parsed.positionals;
  if (parsed.values.version) {
    out.write(`${HUB_VERSION}\n`);
    return 0;
  }
  if (parsed.values.help || command === undefined || command === 'help') {
    out.write(USAGE);
    return command === undefined && !parsed.values.help ? 2 : 0;
  }
  switch (command) {
    case 'start':
      return runStart(rest, env, out);
    case 'config':
      out.write(`${configTable(parsed.values.markdown ? 'markdown' : 'text')}\n`);
      return 0;
    case 'infra':
      return runInfra(env, out);
    case 'nats-config':
      if (parsed.values.check !== undefined) {
        const problems = checkNatsConfigFile(parsed.values.check);
        out.write(problems.length === 0 ? `${parsed.values.check}: ok\n` : `perry-hub: ${problems.join('\n')}\n`);
        return problems.length === 0 ? 0 : 1;
      }
      try {
        out.write(`${renderDeploymentAccounts(env)}\n`);
        return 0;
      } catch (err) {
        if (err instanceof ConfigError) {
          out.write(`perry-hub: ${err.message}\n`);
          return 2;
        }
        throw err;
      }
    default:
      out.write(`perry-hub: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

async function runInfra(env: Env, out: NodeJS.WritableStream): Promise<number> {
  let cli;
  let subjectPrefix;
  try {
    cli = loadConfig(CliConfig, env);
    ({ subjectPrefix } = loadConfig(configSchema({ subjectPrefix: natsFields.subjectPrefix }), env));
  } catch (err) {
    if (err instanceof ConfigError) {
      out.write(`perry-hub: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const log = createLogger({ level: env['PERRY_HUB_LOG_LEVEL'] || 'info', name: 'perry-hub' });
  const stack = await startLocalStack({
    dataDir: cli.dataDir,
    natsPort: cli.localNatsPort,
    natsMonitorPort: cli.localNatsMonitorPort,
    dbPort: cli.localDbPort,
    startNats: true,
    startDb: true,
    subjectPrefix,
    log,
  });
  out.write(
    `Local nats-server and MariaDB are up. Point services at them with:\n${Object.entries(stack.env)
      .map(([k, v]) => `  export ${k}=${v === '' ? "''" : v}`)
      .join('\n')}\n${stack.servers
      .filter((s) => s.name === 'Monitor')
      .map((s) => `nats-server monitoring (/varz, /jsz): ${s.url}\n`)
      .join('')}Press Ctrl-C to stop.\n`,
  );
  await new Promise<void>((resolve) => onShutdownSignal(() => stack.stop().then(resolve), log));
  return 0;
}

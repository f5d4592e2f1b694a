/** The commands that run the hub itself, loaded only when one of them is used (see main.ts). */
import {
  ConfigError,
  configSchema,
  createLogger,
  exitOnUncaught,
  isLogLevel,
  loadConfig,
  natsFields,
  onShutdownSignal,
} from '@perry-hub/runtime';
import type { ToolListed } from '@perry-hub/contracts';
import { EXIT } from './client/common.js';
import { CliConfig } from './config.js';
import { startLocalStack } from './local.js';
import { checkNatsConfigFile, renderDeploymentAccounts } from './nats-config.js';

export { configTable } from './config.js';
export { runStart } from './start.js';
export { syncLocalToolUsers } from './tool-users.js';

type Env = Readonly<Record<string, string | undefined>>;
type Stream = NodeJS.WritableStream & { isTTY?: boolean };

export async function runNatsConfig(
  check: string | undefined,
  env: Env,
  out: Stream,
  hub?: { server: string; adminSecret: string },
): Promise<number> {
  // A config that fails the check is bad configuration (2), like a bad variable; 1 is reserved
  // for a failed build or hub start.
  if (check !== undefined) {
    const problems = checkNatsConfigFile(check);
    out.write(problems.length === 0 ? `${check}: ok\n` : `perry-hub: ${problems.join('\n')}\n`);
    return problems.length === 0 ? EXIT.ok : EXIT.usage;
  }
  let tools: ToolListed[] = [];
  if (hub) {
    const url = `${hub.server}/api/v1/admin/tools`;
    let res: Response;
    try {
      res = await fetch(url, { headers: { authorization: `Bearer ${hub.adminSecret}` } });
    } catch (err) {
      out.write(`perry-hub: GET ${url} failed: ${(err as Error).message}\n`);
      return EXIT.hub;
    }
    if (!res.ok) {
      out.write(`perry-hub: GET ${url} answered ${res.status}\n`);
      return EXIT.hub;
    }
    tools = ((await res.json()) as { tools: ToolListed[] }).tools;
  }
  try {
    out.write(`${renderDeploymentAccounts(env, tools)}\n`);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof ConfigError) {
      out.write(`perry-hub: ${err.message}\n`);
      return EXIT.usage;
    }
    throw err;
  }
}

export async function runInfra(env: Env, out: Stream, err: Stream): Promise<number> {
  let cli;
  let subjectPrefix;
  try {
    cli = loadConfig(CliConfig, env);
    ({ subjectPrefix } = loadConfig(configSchema({ subjectPrefix: natsFields.subjectPrefix }), env));
  } catch (e) {
    if (e instanceof ConfigError) {
      err.write(`perry-hub: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const level = env['PERRY_HUB_LOG_LEVEL'] || 'info';
  const log = createLogger({ level: isLogLevel(level) ? level : 'info', name: 'perry-hub' });
  exitOnUncaught(log);
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

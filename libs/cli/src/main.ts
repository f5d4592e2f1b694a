/** Command-line dispatch for `perry-hub` (commander): the hub's own commands and the client ones. */
import { Command, CommanderError, Option } from 'commander';
import { HUB_VERSION, isServiceName, SERVICE_NAMES } from '@perry-hub/contracts';
import { adminSecret, CLIENT_ENV_HELP, CliError, EXIT, EXIT_CODES_HELP, serverUrl, type Io } from './client/common.js';
import { registerClientCommands } from './client/commands.js';

// The hub's own code (every service, the NATS and MySQL clients) is imported only by the commands
// that run it: a client command starts in a fraction of the time.
const hub = () => import('./hub-commands.js');

type Env = Readonly<Record<string, string | undefined>>;
type Stream = NodeJS.WritableStream & { isTTY?: boolean };

const HUB_HELP = `
Running the hub:
  perry-hub start                 all six services in one process, with a local nats-server and
                                  MariaDB (data in PERRY_HUB_DATA_DIR) unless PERRY_HUB_NATS_URL /
                                  PERRY_DB_HOST point elsewhere
  perry-hub start <service>...    only these services, against the configured NATS and MySQL
  perry-hub <service>...          the same (so \`npm start -- scheduler\` works)
  perry-hub worker [--once]       a build worker that takes jobs from a hub (see
                                  'perry-hub worker --help')

Services: ${SERVICE_NAMES.join(', ')}

Configuration comes from environment variables; see 'perry-hub config'. A bad value (all of
them reported together) or a port in use exits with 2 before anything starts; NATS or MySQL
that cannot be reached is reported within seconds and retried with a countdown.

${CLIENT_ENV_HELP}

${EXIT_CODES_HELP}
`;

export const USAGE = `perry-hub ${HUB_VERSION}: the Perry build-dispatch hub\n${HUB_HELP}`;

export async function main(
  argv: readonly string[],
  env: Env,
  out: Stream = process.stdout,
  err?: Stream,
): Promise<number> {
  const errOut: Stream = err ?? (out === process.stdout ? process.stderr : out);
  const io: Io = { out, err: errOut, env };
  let args = [...argv];
  // The worker parses its own options (--once, --config).
  if (args[0] === 'worker') return (await import('@perry-hub/worker')).main(args.slice(1), env, out);
  if (args.length === 0) {
    out.write(USAGE);
    return EXIT.usage;
  }
  // `perry-hub scheduler` (and `npm start -- scheduler`) as before: services without `start`.
  if (isServiceName(args[0]!)) args = ['start', ...args];

  let code: number = EXIT.ok;
  const program = new Command('perry-hub')
    .description(`perry-hub ${HUB_VERSION}: the Perry build-dispatch hub, and the tool to use and operate it`)
    .version(HUB_VERSION, '-v, --version')
    .addHelpText('after', HUB_HELP)
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .configureOutput({ writeOut: (s) => out.write(s), writeErr: (s) => errOut.write(s) });

  program
    .command('start')
    .description('run the hub: all services with local servers, or the services named')
    .argument('[service...]', `services to run (${SERVICE_NAMES.join(', ')}); none: the all-in-one`)
    .addHelpText('after', `\nExit codes: 0 stopped in order, 1 failed to start, 2 bad configuration or a port in use`)
    .action(async (services: string[]) => {
      code = await (await hub()).runStart(services, env, out, errOut);
    });

  program
    .command('infra')
    .description('run only the local nats-server and MariaDB, and print the variables to export')
    .action(async () => {
      code = await (await hub()).runInfra(env, out, errOut);
    });

  program
    .command('config')
    .description('list every configuration variable with its default')
    .option('--markdown', 'as the README table')
    .action(async (options: { markdown?: boolean }) => {
      out.write(`${(await hub()).configTable(options.markdown ? 'markdown' : 'text')}\n`);
    });

  program
    .command('nats-config')
    .description('print the nats-server accounts block for the seed files in PERRY_HUB_NATS_CREDENTIALS_DIR')
    .addOption(new Option('--check <file>', 'check a nats-server config instead: users only inside accounts'))
    .addOption(new Option('--server <url>', 'also the tool users of the hub at this URL (perry-hub tools)'))
    .addOption(
      new Option(
        '--admin-secret <secret>',
        "admin secret for --server (env PERRY_HUB_ADMIN_SECRET; for a hub on this machine, its secrets.json's)",
      ),
    )
    .addHelpText(
      'after',
      '\nExit codes: 0 printed or checked ok, 2 bad usage, an invalid config file (--check) or seed directory, 3 --server could not be reached or answered an error',
    )
    .action(async (options: { check?: string; server?: string; adminSecret?: string }) => {
      let from: { server: string; adminSecret: string } | undefined;
      if (options.server !== undefined) {
        // The same resolution as every admin command: flag, variable, then the local secrets file.
        const server = serverUrl({ server: options.server }, env);
        from = { server, adminSecret: adminSecret({ adminSecret: options.adminSecret }, env, server) };
      }
      code = await (await hub()).runNatsConfig(options.check, env, out, from);
    });

  registerClientCommands(program, io, (c) => (code = c));

  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (e) {
    // A script asked for JSON: it gets JSON on failure too.
    const jsonError = (message: string, exitCode: number) => {
      if (args.includes('--json')) out.write(`${JSON.stringify({ error: { message, exit_code: exitCode } })}\n`);
    };
    if (e instanceof CommanderError) {
      // --help and --version end here with 0; a usage mistake has been printed already.
      if (e.exitCode === 0) return EXIT.ok;
      jsonError(e.message.replace(/^error: /, ''), EXIT.usage);
      return EXIT.usage;
    }
    if (e instanceof CliError) {
      errOut.write(`perry-hub: ${e.message}\n`);
      jsonError(e.message, e.exitCode);
      return e.exitCode;
    }
    if ((e as { code?: unknown }).code === 'CONFIG_INVALID') {
      errOut.write(`perry-hub: ${(e as Error).message}\n`);
      return EXIT.usage;
    }
    throw e;
  }
  return code;
}

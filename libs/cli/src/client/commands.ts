/** The client commands of `perry-hub`: each talks to a hub over its HTTP API. */
import { Option, type Command } from 'commander';
import { CLIENT_TARGETS } from '@perry-hub/contracts';
import { CLIENT_ENV_HELP, EXIT_CODES_HELP, clientCommand, type Io } from './common.js';
import { registerLicenseCommands } from './licenses.js';
import { registerOperateCommands } from './operate.js';
import { registerToolCommands } from './tools.js';
import { runSubmit, type SubmitOptions } from './submit.js';

export function registerClientCommands(program: Command, io: Io, setCode: (code: number) => void): void {
  clientCommand(program, 'submit', 'pack a project directory, build it on the hub, and download the artifacts')
    .argument('<dir>', 'the project directory (packed as perry publish packs it)')
    .requiredOption('-t, --target <target...>', `target(s) to build: ${CLIENT_TARGETS.join(', ')}`)
    .addOption(new Option('--license-key <key>', 'license key to submit with (env PERRY_LICENSE_KEY)'))
    .addOption(new Option('--api-token <token>', 'account API token to submit with (env PERRY_HUB_API_TOKEN)'))
    .option('-o, --output <dir>', 'where artifacts are saved', 'dist')
    .option('--no-wait', 'print the job id once the hub accepted the build, and exit 0')
    .option('--no-download', 'follow the build but do not download its artifacts')
    .option('--app-name <name>', 'manifest app_name (default: package.json name, or the directory name)')
    .option('--bundle-id <id>', 'manifest bundle_id (default com.perry.<app name>)')
    .option('--app-version <version>', 'manifest version (default: package.json version, or 1.0.0)')
    .option('--entry <file>', 'manifest entry (default: package.json main when .ts, or src/main.ts)')
    .option('--manifest <file>', 'a JSON file of further manifest fields (targets come from --target)')
    .option('--credentials <file>', 'a JSON file of signing credentials, as perry publish sends them')
    .addHelpText(
      'after',
      `
Shows upload progress, the build's stages and log lines, and download progress on a terminal;
with --json prints one JSON object at the end (job_id, outcome, success, duration_secs,
artifacts with name, size, sha256, path, verified). Each artifact's SHA-256 is checked against
the one the hub announced.

${CLIENT_ENV_HELP}

${EXIT_CODES_HELP}`,
    )
    .action(async (dir: string, options: SubmitOptions) => setCode(await runSubmit(dir, options, io)));

  registerLicenseCommands(program, io, setCode);
  registerOperateCommands(program, io, setCode);
  registerToolCommands(program, io, setCode);
}

/**
 * `perry-hub nats-config`: the `accounts {}` block of a deployment's nats-server config, from the
 * seed files in PERRY_HUB_NATS_CREDENTIALS_DIR (`<service>.nk`, `tool-<name>.nk`). It prints
 * public keys and permissions only, so its output can go to the server's config management.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Type from 'typebox';
import { natsUsers, type ToolListed } from '@perry-hub/contracts';
import { assertSafeNatsConfig, findBinary, isLocalStackError, renderNatsAccounts } from '@perry-hub/localstack';
import {
  ConfigError,
  configSchema,
  fromEnv,
  loadConfig,
  natsFields,
  publicKeyOfSeedFile,
  SEED_FILE_SUFFIX,
} from '@perry-hub/runtime';

const NatsConfigConfig = configSchema({
  subjectPrefix: natsFields.subjectPrefix,
  natsCredentialsDir: fromEnv('PERRY_HUB_NATS_CREDENTIALS_DIR', Type.String({ minLength: 1 }), {
    description: 'Directory of the NKEY seed files (`<service>.nk`, `tool-<name>.nk`)',
  }),
});

type Env = Readonly<Record<string, string | undefined>>;

/** `tools`: the hub's tool identities (public keys), from `--server`; their users are added. */
export function renderDeploymentAccounts(env: Env, tools: readonly ToolListed[] = []): string {
  const config = loadConfig(NatsConfigConfig, env);
  let files: string[];
  try {
    files = readdirSync(config.natsCredentialsDir).filter((f) => f.endsWith(SEED_FILE_SUFFIX));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError([`PERRY_HUB_NATS_CREDENTIALS_DIR ${config.natsCredentialsDir} cannot be read (${code})`]);
  }
  if (files.length === 0) throw new ConfigError([`no *${SEED_FILE_SUFFIX} files in ${config.natsCredentialsDir}`]);
  const keys = new Map(
    files
      .sort()
      .map((f) => [f.slice(0, -SEED_FILE_SUFFIX.length), publicKeyOfSeedFile(join(config.natsCredentialsDir, f))]),
  );
  for (const tool of tools) keys.set(tool.nats_user, tool.nkey_public);
  return [
    `# Perry Hub NATS users for subject prefix "${config.subjectPrefix}" (${[...keys.keys()].join(', ')}).`,
    '# Keep every user inside this account: never add a top-level authorization {} block.',
    renderNatsAccounts(usersOf(config.subjectPrefix, keys)),
  ].join('\n');
}

function usersOf(prefix: string, keys: ReadonlyMap<string, string>) {
  try {
    return natsUsers(prefix, keys);
  } catch (err) {
    throw new ConfigError([`PERRY_HUB_NATS_CREDENTIALS_DIR: ${(err as Error).message}`]);
  }
}

/**
 * `perry-hub nats-config --check FILE`: refuses a config with a top-level authorization {} block
 * beside accounts {}, then asks nats-server itself (`-t`) when it is installed. Returns problems.
 */
export function checkNatsConfigFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return [`${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`];
  }
  try {
    assertSafeNatsConfig(text);
  } catch (err) {
    if (isLocalStackError(err, 'UNSAFE_CONFIG')) return [`${file}: ${err.message}`];
    throw err;
  }
  let binary: string;
  try {
    binary = findBinary('nats-server');
  } catch {
    return [];
  }
  const check = spawnSync(binary, ['-t', '-c', file], { encoding: 'utf8' });
  return check.status === 0 ? [] : [`${file}: nats-server -t: ${(check.stderr || check.stdout).trim()}`];
}

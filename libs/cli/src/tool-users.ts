/**
 * How the all-in-one's nats-server learns tool identities: its config's `accounts {}` block is
 * rendered again from the service seed files and the tools the hub knows (public keys only),
 * and the server is told to reload (SIGHUP), which keeps every connection and its JetStream
 * state. `perry-hub tools add|rotate|remove` does it after each change, and `perry-hub start`
 * once the hub is up. A deployment with its own nats-server renders the block with
 * `perry-hub nats-config --server URL` and reloads its server itself.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { natsUsers, type ToolListed } from '@perry-hub/contracts';
import { renderNatsAccounts } from '@perry-hub/localstack';
import { publicKeyOfSeedFile, SEED_FILE_SUFFIX } from '@perry-hub/runtime';
import { LOCAL_NATS_CREDENTIALS_DIR } from './local.js';

/** Identity name → public key: the seed files' and the tools'. */
export function identityKeys(credentialsDir: string, tools: readonly ToolListed[]): Map<string, string> {
  const keys = new Map<string, string>();
  for (const file of readdirSync(credentialsDir).sort()) {
    if (!file.endsWith(SEED_FILE_SUFFIX)) continue;
    keys.set(file.slice(0, -SEED_FILE_SUFFIX.length), publicKeyOfSeedFile(join(credentialsDir, file)));
  }
  for (const tool of tools) keys.set(tool.nats_user, tool.nkey_public);
  return keys;
}

/** The config with its accounts block (always the last top-level block the hub renders) replaced. */
export function withAccounts(config: string, accounts: string): string {
  const at = config.search(/^accounts \{$/m);
  return `${at < 0 ? config : config.slice(0, at)}${accounts}`;
}

export type LocalSync = { synced: true; users: number; reloaded: boolean } | { synced: false; why: string };

/**
 * Re-render the local nats-server's users and reload it; `synced: false` says why it could not.
 * A config that renders as it stands is left alone, and the server is not reloaded: a reload
 * swaps the server's accounts, and `perry-hub start` syncs on every start, right when clients
 * come back after a restart.
 */
export function syncLocalToolUsers(dataDir: string, prefix: string, tools: readonly ToolListed[]): LocalSync {
  const dir = resolve(dataDir);
  const confPath = join(dir, 'nats', 'nats.conf');
  const pidFile = join(dir, 'nats', 'nats-server.pid');
  const credentialsDir = join(dir, LOCAL_NATS_CREDENTIALS_DIR);
  if (!existsSync(confPath) || !existsSync(pidFile) || !existsSync(credentialsDir)) {
    return { synced: false, why: `no local nats-server of the all-in-one under ${dir}` };
  }
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return { synced: false, why: `${pidFile} holds no pid` };
  const keys = identityKeys(credentialsDir, tools);
  const current = readFileSync(confPath, 'utf8');
  const rendered = withAccounts(current, renderNatsAccounts(natsUsers(prefix, keys)));
  // The server's own rendering ends in one more blank line.
  const reloaded = rendered.trimEnd() !== current.trimEnd();
  if (reloaded) writeFileSync(confPath, rendered, { mode: 0o600 });
  try {
    process.kill(pid, reloaded ? 'SIGHUP' : 0);
  } catch (err) {
    return { synced: false, why: `nats-server (pid ${pid}) is not running (${(err as NodeJS.ErrnoException).code})` };
  }
  return { synced: true, users: keys.size, reloaded };
}

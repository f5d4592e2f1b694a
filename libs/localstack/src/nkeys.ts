/**
 * NKEY user seeds on disk, for servers started here: one `<name>.nk` file per identity (0600 in
 * a 0700 directory). The server config gets only the public keys.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nkeys } from '@nats-io/nats-core';

export const SEED_FILE_SUFFIX = '.nk';

/** Creates the missing seed files (existing ones are kept); returns each name's public key. */
export function ensureNkeySeeds(dir: string, names: readonly string[]): Map<string, string> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const keys = new Map<string, string>();
  for (const name of names) {
    const file = join(dir, `${name}${SEED_FILE_SUFFIX}`);
    if (!existsSync(file)) {
      const seed = new TextDecoder().decode(nkeys.createUser().getSeed());
      writeFileSync(file, `${seed}\n`, { mode: 0o600, flag: 'wx' });
    }
    const seed = new TextEncoder().encode(readFileSync(file, 'utf8').trim());
    keys.set(name, nkeys.fromSeed(seed).getPublicKey());
  }
  return keys;
}

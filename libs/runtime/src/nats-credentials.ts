/**
 * A service's NATS identity: an NKEY seed from `<credentialsDir>/<identity>.nk` (the server holds
 * only public keys), or the shared user and password of the older configuration. Problems are
 * ConfigErrors naming the file, never the seed.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { nkeyAuthenticator, nkeys, type Authenticator } from '@nats-io/nats-core';
import { ConfigError } from './config.js';

export interface NatsAuthOptions {
  natsCredentialsDir?: string;
  natsUser: string;
  natsPassword: string;
}

export const SEED_FILE_SUFFIX = '.nk';

/** Reads and checks an NKEY user seed file; returns the seed's bytes. */
export function readSeedFile(file: string): Uint8Array {
  let mode: number;
  let text: string;
  try {
    mode = statSync(file).mode;
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError([`NATS credentials file ${file} cannot be read (${code})`]);
  }
  if ((mode & 0o077) !== 0) {
    throw new ConfigError([
      `NATS credentials file ${file} is readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`,
    ]);
  }
  const seed = new TextEncoder().encode(text.trim());
  try {
    const kp = nkeys.fromSeed(seed);
    if (!kp.getPublicKey().startsWith('U')) throw new Error('not a user key');
  } catch {
    throw new ConfigError([`NATS credentials file ${file} does not hold an NKEY user seed (SU...)`]);
  }
  return seed;
}

/** The nats.js connect options authenticating `identity`; empty when no credentials are set. */
export function natsAuth(
  options: NatsAuthOptions,
  identity: string,
): { authenticator?: Authenticator; user?: string; pass?: string } {
  if (options.natsCredentialsDir) {
    if (options.natsUser) {
      throw new ConfigError(['set either PERRY_HUB_NATS_CREDENTIALS_DIR or PERRY_HUB_NATS_USER, not both']);
    }
    const seed = readSeedFile(join(options.natsCredentialsDir, `${identity}${SEED_FILE_SUFFIX}`));
    return { authenticator: nkeyAuthenticator(seed) };
  }
  return options.natsUser ? { user: options.natsUser, pass: options.natsPassword } : {};
}

/** The public key of a seed file (what the server config lists). */
export function publicKeyOfSeedFile(file: string): string {
  return nkeys.fromSeed(readSeedFile(file)).getPublicKey();
}

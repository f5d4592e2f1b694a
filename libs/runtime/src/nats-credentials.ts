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
  /** CA bundle that signed the servers' certificates (PEM): turns TLS on. */
  natsTlsCaFile?: string;
  /** Client certificate and key (PEM), for servers that verify clients. */
  natsTlsCertFile?: string;
  natsTlsKeyFile?: string;
}

/** The nats.js `tls` option, checked up front so a missing file is a ConfigError, not a hang. */
export function natsTls(options: NatsAuthOptions): { tls?: { caFile?: string; certFile?: string; keyFile?: string } } {
  const files = {
    PERRY_HUB_NATS_TLS_CA_FILE: options.natsTlsCaFile,
    PERRY_HUB_NATS_TLS_CERT_FILE: options.natsTlsCertFile,
    PERRY_HUB_NATS_TLS_KEY_FILE: options.natsTlsKeyFile,
  };
  const problems = Object.entries(files).flatMap(([name, file]) => {
    if (!file) return [];
    try {
      readFileSync(file);
      return [];
    } catch (err) {
      return [`${name} ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`];
    }
  });
  if (!options.natsTlsCertFile !== !options.natsTlsKeyFile) {
    problems.push('set both PERRY_HUB_NATS_TLS_CERT_FILE and PERRY_HUB_NATS_TLS_KEY_FILE, or neither');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  if (!options.natsTlsCaFile && !options.natsTlsCertFile) return {};
  return {
    tls: {
      ...(options.natsTlsCaFile ? { caFile: options.natsTlsCaFile } : {}),
      ...(options.natsTlsCertFile ? { certFile: options.natsTlsCertFile, keyFile: options.natsTlsKeyFile } : {}),
    },
  };
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

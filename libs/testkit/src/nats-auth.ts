/**
 * NATS authentication in tests. Every test nats-server (shared or isolated) requires credentials:
 * - each service connects as its own NKEY user whose permissions are derived for ANY prefix
 *   (subjects, streams and buckets with a wildcard where the prefix goes), because one server
 *   serves many unique test prefixes; the exact-prefix sets are proven by
 *   test/integration/nats-auth.test.ts on a server of its own;
 * - a tool user (`tool-test`) with the tool set, likewise for any prefix;
 * - a superuser for the harness's own inspection connections (`connectTestNats`).
 * The seed files are made once per test process; services find theirs through
 * PERRY_HUB_NATS_CREDENTIALS_DIR (see serviceEnv).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { nkeyAuthenticator, type ConnectionOptions, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { ANY_PREFIX, natsUsers, SERVICE_NAMES } from '@perry-hub/contracts';
import { ensureNkeySeeds, SEED_FILE_SUFFIX, type NatsUser } from '@perry-hub/localstack';
import { newTempDir } from './temp.js';

export const TEST_TOOL = 'tool-test';
const ADMIN = 'test-admin';

interface TestCredentials {
  dir: string;
  users: NatsUser[];
  /** Public key -> identity, to name the culprit of a permissions violation. */
  names: Map<string, string>;
}

let credentials: TestCredentials | undefined;

function testCredentials(): TestCredentials {
  if (credentials) return credentials;
  const dir = newTempDir('nats-credentials');
  const identities = [...SERVICE_NAMES, TEST_TOOL];
  const keys = ensureNkeySeeds(dir, identities);
  const admin = ensureNkeySeeds(dir, [ADMIN]).get(ADMIN)!;
  const users: NatsUser[] = [...natsUsers(ANY_PREFIX, keys), { nkey: admin }];
  const names = new Map([...keys, [ADMIN, admin] as const].map(([name, key]) => [key, name]));
  credentials = { dir, users, names };
  return credentials;
}

/** The directory of every test identity's seed file (`<service>.nk`, `tool-test.nk`). */
export function testNatsCredentialsDir(): string {
  return testCredentials().dir;
}

/** The users a test nats-server is started with. */
export function testNatsUsers(): NatsUser[] {
  return testCredentials().users;
}

/** The identity (service name, `tool-test`, `test-admin`) of a public key, if it is a test user. */
export function testIdentityOf(publicKey: string): string | undefined {
  return testCredentials().names.get(publicKey);
}

function seedOf(identity: string): Uint8Array {
  return new TextEncoder().encode(
    readFileSync(join(testCredentials().dir, `${identity}${SEED_FILE_SUFFIX}`), 'utf8').trim(),
  );
}

/**
 * A connection for the test itself (publishing, inspecting streams, ...), as the superuser
 * unless `as` names a test identity. Every direct NATS connection of a test goes through here.
 */
export function connectTestNats(
  servers: string,
  options: Partial<ConnectionOptions> & { as?: string } = {},
): Promise<NatsConnection> {
  const { as = ADMIN, ...rest } = options;
  return connect({ servers, authenticator: nkeyAuthenticator(seedOf(as)), ...rest });
}

/**
 * The whole hub in this process (the all-in-one, like `perry-hub start`) on the test kit's shared
 * nats-server and MariaDB, isolated by this test's prefix and database. Clients reach it over real
 * HTTP and WebSocket on free ports.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { startHub, type Hub } from '@perry-hub/cli';
import { getFreePorts } from '@perry-hub/localstack';
import { generateSealKey } from '@perry-hub/runtime';
import { serviceEnv, type ServiceEnvInput } from '@perry-hub/testkit';

export const ADMIN_SECRET = 'test-admin-secret-0123456789abcdef';
export const WORKER_SECRET = 's3cr3t';

export interface TestHub {
  readonly hub: Hub;
  /** `--server` for the CLI: the HTTP origin. */
  readonly url: string;
  /** The gateway's own port, as workers are configured (`PERRY_HUB_URL`). */
  readonly workerUrl: string;
  readonly env: Record<string, string>;
  stop(): Promise<void>;
  /** A license the CLI would auto-register (free, device-bound). */
  registerLicense(): Promise<string>;
  /** An account's API token (Bearer auth), with the account's tier. */
  account(tier: 'free' | 'pro'): Promise<string>;
}

export interface TestHubOptions {
  /** Where the hub logs (default: silent, or the level in TEST_LOG); tests that count lines pass one. */
  readonly log?: Logger;
}

export async function startTestHub(
  input: ServiceEnvInput,
  extra: Record<string, string> = {},
  options: TestHubOptions = {},
): Promise<TestHub> {
  const [httpPort, wsPort] = (await getFreePorts(2)) as [number, number];
  const dataDir = mkdtempSync(join(tmpdir(), 'perry-hub-testhub-'));
  const url = `http://127.0.0.1:${httpPort}`;
  const env = serviceEnv(input, {
    PERRY_HUB_HTTP_PORT: String(httpPort),
    PERRY_HUB_WS_PORT: String(wsPort),
    PERRY_HUB_WS_HOST: '127.0.0.1',
    PERRY_HUB_PUBLIC_URL: url,
    PERRY_HUB_DATA_DIR: dataDir,
    PERRY_HUB_ADMIN_SECRET: ADMIN_SECRET,
    PERRY_HUB_WORKER_SECRET: WORKER_SECRET,
    PERRY_HUB_CREDENTIALS_KEY: generateSealKey(),
    PERRY_HUB_VM_PROVIDER: 'none',
    PERRY_HUB_SHUTDOWN_GRACE_MS: '3000',
    ...extra,
  });
  const log = options.log ?? pino({ level: process.env['TEST_LOG'] ?? 'silent' });
  const hub = await startHub({ services: [], env, log });
  const post = async (path: string, body: unknown, auth?: string) => {
    const res = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${auth}` } : {}) },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  let accounts = 0;
  return {
    hub,
    url,
    workerUrl: `ws://127.0.0.1:${wsPort}`,
    env,
    stop: async () => {
      await hub.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
    registerLicense: async () => String((await post('/api/v1/license/register', {}))['license_key']),
    account: async (tier) => {
      accounts += 1;
      const created = await post(
        '/api/v1/account/create',
        { github_id: `${Date.now()}${accounts}`, github_username: `octo${accounts}` },
        ADMIN_SECRET,
      );
      if (tier === 'pro')
        await post('/api/v1/account/update', { account_id: created['id'], tier: 'pro' }, ADMIN_SECRET);
      return String(created['api_token']);
    },
  };
}

/** A real gzip tarball (the hub checks the magic). */
export function tarball(label: string): Buffer {
  // gzip header + arbitrary payload: the hub only checks that it is gzip, workers here do not untar.
  return Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0x03]), Buffer.from(`project ${label}`)]);
}

export const MANIFEST = {
  app_name: 'MyApp',
  bundle_id: 'com.example.myapp',
  version: '42',
  short_version: '1.3.0',
  entry: 'src/main.ts',
  icon: null,
  category: null,
  minimum_os_version: null,
  entitlements: null,
};

export const CREDENTIALS = {
  apple_team_id: null,
  apple_signing_identity: null,
  apple_key_id: null,
  apple_issuer_id: null,
  apple_p8_key: null,
};

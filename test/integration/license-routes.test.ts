// The license, account and admin routes over HTTP: the original's request fields, response
// shapes (byte for byte), error codes and statuses, with the security fixes of reference 7.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_SECRET, fakeWorkerGateway, startIntakeHub, type IntakeHub } from './support/intake-hub.js';
import { send, type Reply } from './support/perry-publish.js';

let hub: IntakeHub;
let gateway: Awaited<ReturnType<typeof fakeWorkerGateway>>;

const ADMIN = { authorization: `Bearer ${ADMIN_SECRET}` };

beforeAll(async () => {
  // These tests make dozens of deliberate wrong-credential requests from one address; the
  // failed-authentication limit has its own tests (abuse-*.test.ts).
  hub = await startIntakeHub({ services: ['license', 'ingest'], env: { PERRY_HUB_AUTH_FAILURES_MAX: '0' } });
  gateway = await fakeWorkerGateway(hub, [
    {
      workerId: 'w1',
      name: 'kamatera-fra',
      perryVersion: '0.5.14',
      capabilities: ['linux', 'android', 'windows', 'ios', 'macos', 'tvos'],
      busy: true,
      activeJobs: 1,
      maxConcurrent: 2,
      connectedAt: 1_700_000_000_000,
      gatewayId: 'worker-gateway-1',
      jobs: [{ jobId: '3f2c8a9e-5b1d-4c7e-9a2f-1e6d0b7c4a58', attempt: 1 }],
    },
    {
      workerId: 'w2',
      name: 'perry-sign-win',
      perryVersion: '',
      capabilities: ['windows-sign'],
      busy: false,
      activeJobs: 0,
      maxConcurrent: 1,
      connectedAt: 1_700_000_001_000,
      gatewayId: 'worker-gateway-1',
      jobs: [],
    },
  ]);
}, 120_000);

afterAll(async () => {
  await gateway?.stop();
  await hub?.stop();
});

function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  return send(`${hub.url}${path}`, {
    headers: { 'content-type': 'application/json', ...headers },
    body: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
  });
}

const get = (path: string, headers: Record<string, string> = {}) =>
  send(`${hub.url}${path}`, { method: 'GET', headers });

function expectError(reply: Reply, status: number, code: string, message: string): void {
  expect({ status: reply.status, body: reply.body }).toEqual({
    status,
    body: JSON.stringify({ error: { code, message } }),
  });
}

describe('license routes', () => {
  it('register: {} from the CLI gives a free device license', async () => {
    const reply = await post('/api/v1/license/register', {});
    expect(reply.status).toBe(200);
    expect(reply.body).toMatch(/^\{"license_key":"FREE(-[0-9A-F]{4}){8}","tier":"free","platforms":\["macos"\]\}$/);
    // A body is optional; github_username is kept; the spec's github_token is accepted and ignored.
    expect((await send(`${hub.url}/api/v1/license/register`, {})).status).toBe(200);
    expect((await post('/api/v1/license/register', { github_username: 'octo', github_token: 'x' })).status).toBe(200);
  });

  it('register refuses unknown or mistyped fields instead of dropping them', async () => {
    const unknown = await post('/api/v1/license/register', { github_username: 'octo', tier: 'pro' });
    expect(unknown.status).toBe(400);
    expect(JSON.parse(unknown.body)).toEqual({
      error: { code: 'BAD_REQUEST', message: expect.stringContaining('tier') },
    });
    expect((await post('/api/v1/license/register', { github_username: 5 })).status).toBe(400);
    expectError(
      await post('/api/v1/license/register', '{"__proto__":{"x":1}}'),
      400,
      'BAD_REQUEST',
      'Invalid JSON body',
    );
  });

  it('verify: valid and invalid keys in the original shapes', async () => {
    const { license_key: key } = JSON.parse((await post('/api/v1/license/register', {})).body) as {
      license_key: string;
    };
    expect((await post('/api/v1/license/verify', { license_key: key })).body).toBe(
      '{"valid":true,"tier":"free","platforms":["macos"]}',
    );
    expect((await post('/api/v1/license/verify', { license_key: key.toLowerCase() })).body).toBe(
      '{"valid":false,"tier":null,"platforms":null}',
    );
    expect((await post('/api/v1/license/verify', {})).body).toBe('{"valid":false,"tier":null,"platforms":null}');
  });

  it('verify: 400 BAD_REQUEST Invalid JSON body', async () => {
    expectError(await send(`${hub.url}/api/v1/license/verify`, {}), 400, 'BAD_REQUEST', 'Invalid JSON body');
    expectError(await post('/api/v1/license/verify', '{"license_key":'), 400, 'BAD_REQUEST', 'Invalid JSON body');
    expect((await post('/api/v1/license/verify', { license_key: 42 })).status).toBe(400);
  });
});

describe('account routes', () => {
  it('create, then the same github id (as number or string) returns the same account', async () => {
    const first = await post(
      '/api/v1/account/create',
      { github_id: 99, github_username: 'octo', email: 'o@x.io' },
      ADMIN,
    );
    expect(first.status).toBe(200);
    expect(first.body).toMatch(
      /^\{"id":"[0-9a-f-]{36}","api_token":"[0-9a-f]{64}","github_username":"octo","tier":"free","created":true\}$/,
    );
    const again = await post('/api/v1/account/create', { github_id: '99', github_username: 'octo' }, ADMIN);
    expect(JSON.parse(again.body)).toEqual({ ...JSON.parse(first.body), created: false });
  });

  it('GET /api/v1/account shows tier and usage; update syncs the tier', async () => {
    const created = JSON.parse(
      (await post('/api/v1/account/create', { github_id: 'gh-7', github_username: 'seven', email: 's@x.io' }, ADMIN))
        .body,
    ) as { id: string; api_token: string };
    const update = await post(
      '/api/v1/account/update',
      { account_id: created.id, tier: 'pro', polar_customer_id: 'cus_1', has_payment_method: true },
      ADMIN,
    );
    expect(update.body).toBe('{"ok":true}');
    const d = new Date();
    const period = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}`;
    const view = await get('/api/v1/account', { authorization: `Bearer ${created.api_token}` });
    expect(view.body).toBe(
      JSON.stringify({
        id: created.id,
        github_username: 'seven',
        email: 's@x.io',
        tier: 'pro',
        has_payment_method: true,
        usage: { publishes: 0, publish_limit: 50, deep_verifies: 0, verify_limit: 20, period },
      }),
    );
  });

  it('401 AUTH_REQUIRED Authorization header required', async () => {
    expectError(await get('/api/v1/account'), 401, 'AUTH_REQUIRED', 'Authorization header required');
    expectError(
      await get('/api/v1/account', { authorization: 'Basic abc' }),
      401,
      'AUTH_REQUIRED',
      'Authorization header required',
    );
  });

  it('401 AUTH_INVALID Invalid API token', async () => {
    expectError(
      await get('/api/v1/account', { authorization: 'Bearer nope' }),
      401,
      'AUTH_INVALID',
      'Invalid API token',
    );
  });

  it('404 NOT_FOUND Account not found', async () => {
    expectError(
      await post('/api/v1/account/update', { account_id: '00000000-0000-4000-8000-000000000000' }, ADMIN),
      404,
      'NOT_FOUND',
      'Account not found',
    );
  });

  it('400 BAD_REQUEST account_id required / github_id and github_username required', async () => {
    expectError(
      await post('/api/v1/account/update', { tier: 'pro' }, ADMIN),
      400,
      'BAD_REQUEST',
      'account_id required',
    );
    expectError(
      await post('/api/v1/account/create', { github_username: 'x' }, ADMIN),
      400,
      'BAD_REQUEST',
      'github_id and github_username required',
    );
    // Mistyped, not coerced.
    expect((await post('/api/v1/account/update', { account_id: 'x', has_payment_method: 'true' }, ADMIN)).status).toBe(
      400,
    );
  });
});

describe('admin routes', () => {
  it('workers: the original shape, capabilities as the comma-wrapped string', async () => {
    const reply = await get('/api/v1/admin/workers', ADMIN);
    expect(reply.body).toBe(
      '{"expected_version":"0.5.13","workers":[{"name":"kamatera-fra","perry_version":"0.5.14","capabilities":",linux,android,windows,ios,macos,tvos,","busy":true},{"name":"perry-sign-win","perry_version":"","capabilities":",windows-sign,","busy":false}]}',
    );
  });

  it('update-perry: sets the expected version and reports the workers told', async () => {
    const reply = await post('/api/v1/admin/update-perry', { expected_version: '0.5.14' }, ADMIN);
    expect(reply.body).toBe(
      '{"ok":true,"workers_notified":1,"expected_version":"0.5.14","workers":[{"name":"kamatera-fra","perry_version":"0.5.14","busy":true},{"name":"perry-sign-win","perry_version":"unknown","busy":false}]}',
    );
    expect(gateway.calls).toEqual([{ expectedVersion: '0.5.14' }]);
    expect((await send(`${hub.url}/api/v1/admin/update-perry`, { headers: ADMIN })).status).toBe(200);
    expect(gateway.calls.at(-1)).toEqual({});
  });

  it('403 FORBIDDEN Admin authentication required: whole secret only, on every admin route', async () => {
    const wrong: Record<string, string>[] = [
      {},
      { authorization: ADMIN_SECRET },
      { authorization: `Bearer x${ADMIN_SECRET}` },
      { authorization: `Bearer ${ADMIN_SECRET.slice(0, -1)}` },
      { authorization: `Bearer ${ADMIN_SECRET}x` },
    ];
    for (const headers of wrong) {
      expectError(await get('/api/v1/admin/workers', headers), 403, 'FORBIDDEN', 'Admin authentication required');
      expectError(
        await post('/api/v1/admin/update-perry', {}, headers),
        403,
        'FORBIDDEN',
        'Admin authentication required',
      );
      expectError(
        await post('/api/v1/account/create', { github_id: 1, github_username: 'x' }, headers),
        403,
        'FORBIDDEN',
        'Admin authentication required',
      );
      expectError(
        await post('/api/v1/account/update', { account_id: 'x' }, headers),
        403,
        'FORBIDDEN',
        'Admin authentication required',
      );
    }
  });

  it('with no admin secret configured, admin routes refuse with a clear message', async () => {
    const open = await startIntakeHub({ services: ['license', 'ingest'], env: { PERRY_HUB_ADMIN_SECRET: '' } });
    try {
      for (const [method, path] of [
        ['GET', '/api/v1/admin/workers'],
        ['POST', '/api/v1/admin/update-perry'],
        ['POST', '/api/v1/account/create'],
        ['POST', '/api/v1/account/update'],
      ] as const) {
        const reply = await send(`${open.url}${path}`, {
          method,
          headers: { authorization: 'Bearer ', 'content-type': 'application/json' },
          ...(method === 'POST' ? { body: Buffer.from('{"github_id":1,"github_username":"x"}') } : {}),
        });
        expectError(reply, 403, 'ADMIN_DISABLED', 'Admin routes are disabled: PERRY_HUB_ADMIN_SECRET is not set');
      }
      expect(open.logs()).toContain('PERRY_HUB_ADMIN_SECRET is not set');
    } finally {
      await open.stop();
    }
  });
});

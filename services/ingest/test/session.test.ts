// Dashboard sessions without a bus: the sealed cookie (expiry, tampering, keys, rotation), the
// same-origin test of state changes, and the cookie's attributes (Secure over TLS, directly or
// through a trusted proxy only). An admin sign-in needs no bus: the secret is compared locally.
import { describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import cookie from '@fastify/cookie';
import { HubError, subjects } from '@perry-hub/contracts';
import { generateSealKey, parseSealKeys } from '@perry-hub/runtime';
import { CONTENT_SECURITY_POLICY, dashboardRoutes } from '../src/routes/dashboard.js';
import { SESSION_COOKIE, openSession, sealSession, sessionKeys } from '../src/session.js';

const ADMIN = 'admin-secret-for-this-test';
const keysOf = (text: string) => sessionKeys(parseSealKeys(text));

describe('session cookie value', () => {
  const credentialKeys = generateSealKey();
  const keys = keysOf(credentialKeys);
  const value = { credential: 'LICENSE-KEY-1', kind: 'license' as const, expiresAt: Date.now() + 60_000 };

  it('opens to what was sealed, and shows none of it', () => {
    const sealed = sealSession(keys, value);
    expect(sealed).not.toContain('LICENSE');
    expect(Buffer.from(sealed, 'base64url').toString('latin1')).not.toContain('LICENSE-KEY-1');
    expect(openSession(keys, sealed)).toEqual(value);
  });

  it('is not the credentials key: a value sealed for sessions does not open with it', () => {
    const sealed = sealSession(keys, value);
    expect(openSession(parseSealKeys(credentialKeys), sealed)).toBeUndefined();
  });

  it('expired, altered, truncated or foreign values are no session', () => {
    const sealed = sealSession(keys, value);
    expect(openSession(keys, sealed, value.expiresAt)).toBeUndefined();
    const bytes = Buffer.from(sealed, 'base64url');
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1;
    expect(openSession(keys, bytes.toString('base64url'))).toBeUndefined();
    expect(openSession(keys, sealed.slice(0, 20))).toBeUndefined();
    expect(openSession(keys, '')).toBeUndefined();
    expect(openSession(keysOf(generateSealKey()), sealed)).toBeUndefined();
    expect(openSession([], sealed)).toBeUndefined();
  });

  it('survives a credentials key rotation (new key first, old one still listed)', () => {
    const sealed = sealSession(keys, value);
    const rotated = keysOf(`${generateSealKey()},${credentialKeys}`);
    expect(openSession(rotated, sealed)).toEqual(value);
  });
});

async function app(trustProxy: boolean) {
  const a = Fastify({ trustProxy });
  // The hub's own handler (app.ts) answers a HubError with its status; so does this one.
  a.setErrorHandler(async (err, _request, reply) =>
    reply
      .status(err instanceof HubError ? err.status : 500)
      .send({ error: { code: (err as HubError).code, message: (err as Error).message } }),
  );
  await a.register(cookie, { hook: false });
  await a.register(
    dashboardRoutes({
      nc: undefined as never,
      subjects: subjects('unit'),
      adminSecret: ADMIN,
      sessionKeys: keysOf(generateSealKey()),
      sessionSecs: 3600,
      dashboardDir: '/nonexistent',
    }),
  );
  return a;
}

const signIn = (headers: Record<string, string>) => ({
  method: 'POST' as const,
  url: '/ui/session',
  headers: { 'content-type': 'application/json', 'sec-fetch-site': 'same-origin', ...headers },
  payload: JSON.stringify({ secret: ADMIN }),
});

describe('sign-in over HTTP', () => {
  it('sets an httpOnly, SameSite=Strict, expiring cookie; Secure behind a trusted TLS proxy only', async () => {
    const trusting = await app(true);
    const plain = await trusting.inject(signIn({}));
    expect(plain.statusCode).toBe(200);
    expect(plain.json()).toMatchObject({ kind: 'admin' });
    const setCookie = String(plain.headers['set-cookie']);
    expect(setCookie).toContain(`${SESSION_COOKIE}=`);
    expect(setCookie).toMatch(/HttpOnly/i);
    expect(setCookie).toMatch(/SameSite=Strict/i);
    expect(setCookie).toMatch(/Max-Age=3600/i);
    expect(setCookie).not.toMatch(/Secure/i);
    expect(setCookie).not.toContain(ADMIN);
    expect(plain.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);

    const tls = await trusting.inject(signIn({ 'x-forwarded-proto': 'https' }));
    expect(String(tls.headers['set-cookie'])).toMatch(/; Secure/i);

    const untrusting = await app(false);
    const spoofed = await untrusting.inject(signIn({ 'x-forwarded-proto': 'https' }));
    expect(spoofed.statusCode).toBe(200);
    expect(String(spoofed.headers['set-cookie'])).not.toMatch(/Secure/i);
    await trusting.close();
    await untrusting.close();
  });

  it('refuses a sign-in from another site, or without any sign of where it came from', async () => {
    const a = await app(false);
    const cross = await a.inject(signIn({ 'sec-fetch-site': 'cross-site' }));
    expect(cross.statusCode).toBe(403);
    expect(cross.headers['set-cookie']).toBeUndefined();
    const bare = await a.inject({ ...signIn({}), headers: { 'content-type': 'application/json' } });
    expect(bare.statusCode).toBe(403);
    const sameOrigin = await a.inject({
      ...signIn({}),
      headers: { 'content-type': 'application/json', host: 'hub.example', origin: 'http://hub.example' },
    });
    expect(sameOrigin.statusCode).toBe(200);
    await a.close();
  });

  it('says who is signed in, and that nobody is without a valid cookie', async () => {
    const a = await app(false);
    const signedIn = await a.inject(signIn({}));
    const value = signedIn.cookies.find((c) => c.name === SESSION_COOKIE)!.value;
    const who = await a.inject({ url: '/ui/session', cookies: { [SESSION_COOKIE]: value } });
    expect(who.json()).toMatchObject({ signed_in: true, kind: 'admin' });
    const nobody = await a.inject({ url: '/ui/session', cookies: { [SESSION_COOKIE]: 'garbage' } });
    expect(nobody.json()).toEqual({ signed_in: false, kind: null, expires_at: null });
    const notBuilt = await a.inject({ url: '/ui/' });
    expect(notBuilt.statusCode).toBe(503);
    await a.close();
  });
});

// Hostile and broken submissions: every one gets a clear 4xx (never a 500 or a crash), a large
// upload is refused before it is read, and memory stays flat while garbage streams through.
import type { RowDataPacket } from '@perry-hub/db';
import { connect as tcp } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_SECRET, startIntakeHub, type IntakeHub } from './support/intake-hub.js';
import { cliManifest, form, perryPublish, publishBody, repeated, send, type Reply } from './support/perry-publish.js';

const MiB = 1024 * 1024;
const TARBALL = gzipSync(Buffer.from('a small project'));

let hub: IntakeHub;
let licenseKey: string;

beforeAll(async () => {
  hub = await startIntakeHub({
    services: ['license', 'ingest'],
    env: {
      PERRY_HUB_HEADERS_TIMEOUT_MS: '1000',
      PERRY_HUB_IDLE_TIMEOUT_MS: '1500',
      PERRY_HUB_KEEP_ALIVE_TIMEOUT_MS: '3000',
      PERRY_HUB_SELF_HOSTED: 'true',
    },
  });
  const reply = await send(`${hub.url}/api/v1/license/register`, {
    headers: { 'content-type': 'application/json' },
    body: Buffer.from('{}'),
  });
  licenseKey = (JSON.parse(reply.body) as { license_key: string }).license_key;
}, 120_000);

afterAll(async () => {
  await hub?.stop();
});

const post = (body: Buffer, contentType = 'multipart/form-data; boundary=b', headers: Record<string, string> = {}) =>
  send(`${hub.url}/api/v1/build`, { headers: { 'content-type': contentType, ...headers }, body });

const publish = (input: Partial<Parameters<typeof perryPublish>[1]>) =>
  perryPublish(hub.url, { manifest: cliManifest(), credentials: '{}', tarball: TARBALL, licenseKey, ...input });

function expect400(reply: Reply, message: string | RegExp): void {
  expect(reply.status).toBe(400);
  const body = JSON.parse(reply.body) as { error: { code: string; message: string } };
  expect(body.error.code).toBe('BAD_REQUEST');
  if (typeof message === 'string') expect(body.error.message).toBe(message);
  else expect(body.error.message).toMatch(message);
}

describe('bad input to POST /api/v1/build', () => {
  it('malformed multipart', async () => {
    expect400(await post(Buffer.from('this is not a multipart body at all')), /^Failed to parse multipart body: /);
    expect400(
      await post(Buffer.from('--b\r\nContent-Disposition: form-data; name="manifest"\r\n\r\n{"a":1}')),
      /^Failed to parse multipart body: /,
    );
    expect400(await post(Buffer.from('--b\r\nNo-Header-Colon\r\n\r\nx\r\n--b--\r\n')), /^(Failed to parse|Missing)/);
    expect400(
      await post(form([['manifest', '{}']]), 'multipart/form-data; boundary='),
      /^Failed to parse multipart body: /,
    );
  });

  it('missing parts', async () => {
    expect400(await post(Buffer.alloc(0)), "Missing 'manifest' field");
    expect400(await post(form([['license_key', licenseKey]])), "Missing 'manifest' field");
    expect400(
      await post(
        form([
          ['manifest', cliManifest()],
          ['license_key', licenseKey],
        ]),
      ),
      "Missing 'tarball_b64' field",
    );
  });

  it('a manifest that is not JSON, or not an object', async () => {
    expect400(await publish({ manifest: 'app_name=MyApp' }), 'Invalid manifest JSON');
    expect400(await publish({ manifest: '' }), 'Invalid manifest JSON');
    expect400(await publish({ manifest: '[1,2]' }), 'Invalid manifest JSON: expected an object');
  });

  it('a manifest failing the schema names the field', async () => {
    const manifest = JSON.parse(cliManifest()) as Record<string, unknown>;
    const without = (key: string) => JSON.stringify({ ...manifest, [key]: undefined });
    expect400(await publish({ manifest: without('entry') }), "Invalid manifest: missing 'entry'");
    expect400(await publish({ manifest: without('app_name') }), "Invalid manifest: missing 'app_name'");
    expect400(
      await publish({ manifest: cliManifest({ targets: [] }) }),
      "Invalid manifest: 'targets' must not have fewer than 1 items",
    );
    expect400(
      await publish({ manifest: cliManifest({ targets: ['ios', 'amiga'] }) }),
      /^Invalid manifest: 'targets\[1\]' must be one of macos, ios, /,
    );
    expect400(await publish({ manifest: cliManifest({ targets: ['ios-sign'] }) }), /^Invalid manifest: 'targets\[0\]'/);
    expect400(await publish({ manifest: cliManifest({ version: 42 }) }), "Invalid manifest: 'version' must be string");
    expect400(
      await publish({ manifest: cliManifest({ build_type: 'library' }) }),
      "Invalid manifest: 'build_type' must be one of app, plugin",
    );
    expect400(
      await publish({ manifest: cliManifest({ build_type: 1 }) }),
      "Invalid manifest: 'build_type' must be one of app, plugin",
    );
  });

  it('a callback_url that is unsafe, or that no tool identity can sign', async () => {
    const withCallback = (url: string) =>
      post(
        form([
          ['manifest', cliManifest({ build_type: 'plugin' })],
          ['credentials', '{}'],
          ['callback_url', url],
          ['tarball_b64', TARBALL.toString('base64')],
          ['license_key', licenseKey],
        ]),
      );
    expect400(
      await withCallback('http://169.254.169.254/latest/'),
      /^Invalid 'callback_url': 169\.254\.169\.254 is a linkLocal/,
    );
    expect400(await withCallback('file:///etc/passwd'), "Invalid 'callback_url': only http and https are allowed");
    // A public URL, but this license has no tool identity whose secret would sign the callbacks.
    expect400(
      await withCallback('https://93.184.215.14/artifact/1'),
      /callbacks need a tool identity bound to this license/,
    );
    const [rows] = await hub.db.query<RowDataPacket[]>(
      'SELECT COUNT(*) AS n FROM builds WHERE callback_url IS NOT NULL',
    );
    expect(rows[0]!['n']).toBe(0);
  });

  it('base64 garbage and a tarball that is not gzip', async () => {
    const body = (tarball: string) =>
      form([
        ['manifest', cliManifest()],
        ['tarball_b64', tarball],
        ['license_key', licenseKey],
      ]);
    expect400(await post(body('!!!! not base64 ####')), "Invalid 'tarball_b64': not base64 (at character 0)");
    expect400(await post(body(`${TARBALL.toString('base64url')}-_`)), /^Invalid 'tarball_b64': not base64/);
    expect400(await post(body('QQ=A')), "Invalid 'tarball_b64': not base64 (at character 3)");
    expect400(
      await post(body(Buffer.from('plain text').toString('base64'))),
      "Invalid 'tarball_b64': the tarball is not gzip-compressed",
    );
    expect400(await post(body('')), "Invalid 'tarball_b64': the tarball is not gzip-compressed");
    expect400(
      await publish({ tarball: Buffer.from('PK\x03\x04zip'), binary: true }),
      "Invalid 'tarball': the tarball is not gzip-compressed",
    );
  });

  it('__proto__ keys and part names are refused', async () => {
    expect400(
      await publish({ manifest: '{"__proto__":{"polluted":1},"app_name":"x"}' }),
      'Invalid manifest JSON: key "__proto__" is not allowed',
    );
    expect400(
      await publish({ credentials: '{"constructor":{"prototype":{"polluted":1}}}' }),
      'Invalid credentials JSON: key "prototype" is not allowed',
    );
    expect400(await post(form([['__proto__', '{}']])), /^Failed to parse multipart body/);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('a wrong content type', async () => {
    for (const type of [
      'application/json',
      'text/plain',
      'application/x-www-form-urlencoded',
      'application/octet-stream',
    ]) {
      expect400(await post(Buffer.from('{"manifest":{}}'), type), 'Expected multipart/form-data');
    }
    expect400(await send(`${hub.url}/api/v1/build`, { body: Buffer.from('x') }), 'Expected multipart/form-data');
  });

  it('a multipart of 10,000 fields', async () => {
    const parts: [string, string][] = Array.from({ length: 10_000 }, (_, i) => [`f${i}`, 'x']);
    expect400(await post(form(parts)), /^Too many parts in the multipart body/);
  });

  it('oversized uploads: 413 from the declared length, before the body is read', async () => {
    let sent = 0;
    const body = async function* () {
      // Headers go out, then a trickle: the answer must not wait for 300 MiB.
      for (let i = 0; i < 100; i++) {
        sent += 1024;
        yield Buffer.alloc(1024, 0x41);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const started = Date.now();
    const reply = await send(`${hub.url}/api/v1/build`, {
      headers: { 'content-type': 'multipart/form-data; boundary=b', 'content-length': 300 * MiB },
      body: body(),
    });
    expect(reply.status).toBe(413);
    expect(JSON.parse(reply.body)).toEqual({
      error: { code: 'UPLOAD_TOO_LARGE', message: 'Tarball too large: at most 200 MiB' },
    });
    expect(reply.headers['connection']).toBe('close');
    expect(Date.now() - started).toBeLessThan(1500);
    expect(sent).toBeLessThan(100 * 1024);
  });

  it('oversized uploads: once the tier is known, 413 as soon as the limit is passed', async () => {
    const account = await send(`${hub.url}/api/v1/account/create`, {
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_SECRET}` },
      body: Buffer.from('{"github_id":"big","github_username":"big"}'),
    });
    const apiToken = (JSON.parse(account.body) as { api_token: string }).api_token;
    const tooLarge = { error: { code: 'UPLOAD_TOO_LARGE', message: 'Tarball too large: the free tier allows 50 MiB' } };
    const gzipStart = Buffer.concat([TARBALL.subarray(0, 3), Buffer.alloc(MiB - 3)]);

    // Declared: 60 MiB for a free account is refused after the manifest, before the tarball.
    const declared = publishBody({
      manifest: cliManifest(),
      credentials: '{}',
      tarball: repeated(gzipStart, 60 * MiB),
    });
    let sentDeclared = 0;
    const early = await send(`${hub.url}/api/v1/build`, {
      headers: {
        'content-type': `multipart/form-data; boundary=${declared.boundary}`,
        'content-length': declared.length,
        authorization: `Bearer ${apiToken}`,
      },
      body: (async function* () {
        for await (const chunk of declared.chunks()) {
          sentDeclared += chunk.length;
          yield chunk;
          await new Promise((r) => setTimeout(r, 5));
        }
      })(),
    });
    expect({ status: early.status, body: JSON.parse(early.body) }).toEqual({ status: 413, body: tooLarge });
    expect(sentDeclared).toBeLessThan(20 * MiB);

    // Undeclared (chunked): refused once 50 MiB have been decoded, not after all 60.
    const chunked = publishBody({
      manifest: cliManifest(),
      credentials: '{}',
      tarball: repeated(gzipStart, 60 * MiB),
      binary: true,
    });
    let sentChunked = 0;
    let answeredAt = -1;
    const late = await send(`${hub.url}/api/v1/build`, {
      headers: {
        'content-type': `multipart/form-data; boundary=${chunked.boundary}`,
        authorization: `Bearer ${apiToken}`,
      },
      body: (async function* () {
        for await (const chunk of chunked.chunks()) {
          sentChunked += chunk.length;
          yield chunk;
        }
      })(),
    }).then((r) => {
      answeredAt = sentChunked;
      return r;
    });
    expect({ status: late.status, body: JSON.parse(late.body) }).toEqual({ status: 413, body: tooLarge });
    expect(answeredAt).toBeLessThan(60 * MiB);
    const [rows] = await hub.db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM builds WHERE account_id IS NOT NULL');
    expect(rows[0]).toEqual({ n: 0 });
  });

  it('a slowloris client is disconnected; the server keeps serving', async () => {
    const closedAfterMs = await new Promise<number>((resolve, reject) => {
      const started = Date.now();
      const socket = tcp(Number(new URL(hub.url).port), '127.0.0.1');
      const header = 'POST /api/v1/build HTTP/1.1\r\nHost: hub\r\nX-Slow: ';
      let i = 0;
      const timer = setInterval(() => {
        if (!socket.destroyed) socket.write(i < header.length ? header[i++]! : 'a');
      }, 100);
      socket.on('data', () => undefined);
      socket.on('close', () => {
        clearInterval(timer);
        resolve(Date.now() - started);
      });
      socket.on('error', () => undefined);
      setTimeout(() => reject(new Error('slowloris still connected after 10 s')), 10_000);
    });
    expect(closedAfterMs).toBeLessThan(4_000);

    // A client that sends its headers and then stalls mid-body is cut off by the idle timeout.
    const stalled = await new Promise<number>((resolve) => {
      const started = Date.now();
      const socket = tcp(Number(new URL(hub.url).port), '127.0.0.1', () => {
        socket.write(
          'POST /api/v1/build HTTP/1.1\r\nHost: hub\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n',
        );
      });
      socket.on('data', () => undefined);
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(Date.now() - started));
    });
    expect(stalled).toBeLessThan(5_000);
    expect((await publish({})).status).toBe(200);
  });

  it('a connection between requests is kept for the keep-alive timeout, past the headers and idle timeouts', async () => {
    // A proxy reuses its idle upstream connections for as long as its own idle timeout: the hub
    // must not close one sooner, and says how long it keeps one (Keep-Alive: timeout).
    const socket = tcp(Number(new URL(hub.url).port), '127.0.0.1');
    socket.on('error', () => undefined);
    let received = '';
    const responses: string[] = [];
    let waiting: (() => void) | undefined;
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const end = received.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(received.slice(0, end));
      if (end >= 0 && length && received.length >= end + 4 + Number(length[1])) {
        responses.push(received.slice(0, end + 4 + Number(length[1])));
        received = received.slice(end + 4 + Number(length[1]));
        waiting?.();
      }
    });
    const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now())));
    const get = async () => {
      const answered = new Promise<void>((resolve) => (waiting = resolve));
      socket.write('GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n');
      await answered;
      return { head: responses.at(-1)!, at: Date.now() };
    };
    await new Promise((resolve) => socket.once('connect', resolve));
    const first = await get();
    expect(first.head).toMatch(/^HTTP\/1\.1 200 /);
    expect(first.head).toMatch(/\r\nkeep-alive: timeout=3\r\n/i);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(socket.destroyed).toBe(false);
    const second = await get();
    expect(second.head).toMatch(/^HTTP\/1\.1 200 /);
    const idleMs = (await closed) - second.at;
    expect(idleMs).toBeGreaterThanOrEqual(2_500);
    expect(idleMs).toBeLessThan(6_000);
  });

  it('never a 500; memory stays flat while large garbage streams through', async () => {
    const before = process.memoryUsage().rss;
    // 8 concurrent uploads of 40 MiB each whose base64 breaks only at the very end.
    const valid = Buffer.from(
      Buffer.concat([TARBALL.subarray(0, 3), Buffer.alloc(3 * 256 * 1024 - 3)]).toString('base64'),
    );
    const uploads = Array.from({ length: 8 }, () => {
      const boundary = 'b';
      const head = Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="manifest"\r\n\r\n${cliManifest()}\r\n--${boundary}\r\nContent-Disposition: form-data; name="tarball_b64"\r\n\r\n`,
      );
      const body = async function* () {
        yield head;
        for (let i = 0; i < 40; i++) yield valid;
        yield Buffer.from(`$$$$\r\n--${boundary}--\r\n`);
      };
      return send(`${hub.url}/api/v1/build`, {
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
        body: body(),
      });
    });
    const replies = await Promise.all(uploads);
    for (const reply of replies) expect400(reply, /^Invalid 'tarball_b64': not base64/);
    const grownMiB = (process.memoryUsage().rss - before) / MiB;
    console.log(`rss grew by ${grownMiB.toFixed(1)} MiB while 8 x 40 MiB streamed through`);
    expect(grownMiB).toBeLessThan(120);
    expect(hub.logs()).not.toMatch(/"level":50/);
  });
});

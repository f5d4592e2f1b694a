/**
 * A client that speaks exactly like `perry publish` (reference 4.2): reqwest's text-only
 * multipart, parts in the CLI's order (manifest, credentials, tarball_b64, then license_key
 * unless Bearer auth), no part headers but Content-Disposition, a Content-Length, and the
 * base64 of the tarball streamed rather than built whole.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { Readable } from 'node:stream';

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** reqwest's boundary: four random u64 in hex, dash-separated. */
export function reqwestBoundary(): string {
  return [0, 1, 2, 3].map(() => randomBytes(8).toString('hex')).join('-');
}

function textPart(boundary: string, name: string, value: string): Buffer {
  return Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`);
}

export interface PublishInput {
  manifest: string;
  credentials: string;
  /** Gzip tarball bytes, or a source of them with their total length. */
  tarball: Buffer | { length: number; chunks: () => AsyncIterable<Buffer> };
  licenseKey?: string;
  apiToken?: string;
  /** Send a binary `tarball` file part instead of `tarball_b64` (new clients). */
  binary?: boolean;
  headers?: Record<string, string>;
}

const base64Length = (n: number) => 4 * Math.ceil(n / 3);

async function* base64Of(chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let carry = Buffer.alloc(0);
  for await (const chunk of chunks) {
    const data = Buffer.concat([carry, chunk]);
    const whole = data.length - (data.length % 3);
    carry = data.subarray(whole);
    if (whole > 0) yield Buffer.from(data.toString('base64', 0, whole));
  }
  if (carry.length > 0) yield Buffer.from(carry.toString('base64'));
}

/** The request body of `perry publish`, as a length and a stream of chunks. */
export function publishBody(input: PublishInput, boundary = reqwestBoundary()) {
  const tarball = input.tarball;
  const source = Buffer.isBuffer(tarball)
    ? {
        length: tarball.length,
        chunks: async function* () {
          yield tarball;
        },
      }
    : tarball;
  const head = Buffer.concat([
    textPart(boundary, 'manifest', input.manifest),
    textPart(boundary, 'credentials', input.credentials),
    Buffer.from(
      input.binary
        ? `--${boundary}\r\nContent-Disposition: form-data; name="tarball"; filename="project.tar.gz"\r\nContent-Type: application/gzip\r\n\r\n`
        : `--${boundary}\r\nContent-Disposition: form-data; name="tarball_b64"\r\n\r\n`,
    ),
  ]);
  const tail = Buffer.concat([
    Buffer.from('\r\n'),
    input.licenseKey !== undefined ? textPart(boundary, 'license_key', input.licenseKey) : Buffer.alloc(0),
    Buffer.from(`--${boundary}--\r\n`),
  ]);
  const tarballLength = input.binary ? source.length : base64Length(source.length);
  async function* chunks(): AsyncGenerator<Buffer> {
    yield head;
    yield* input.binary ? source.chunks() : base64Of(source.chunks());
    yield tail;
  }
  return { boundary, length: head.length + tarballLength + tail.length, chunks };
}

/** Send any request and collect the whole answer (also when the server answers early). */
export function send(
  url: string,
  options: { method?: string; headers?: Record<string, string | number>; body?: AsyncIterable<Buffer> | Buffer },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'POST', headers: options.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    // An early answer closes the connection while we may still be writing: a write error then
    // only counts if no answer follows.
    let answered = false;
    req.on('response', () => (answered = true));
    req.on('error', (err) => setTimeout(() => (answered ? undefined : reject(err)), 3_000));
    if (options.body === undefined) req.end();
    else if (Buffer.isBuffer(options.body)) req.end(options.body);
    else Readable.from(options.body).on('error', reject).pipe(req);
  });
}

export async function perryPublish(baseUrl: string, input: PublishInput): Promise<Reply> {
  const body = publishBody(input);
  return send(`${baseUrl}/api/v1/build`, {
    headers: {
      'content-type': `multipart/form-data; boundary=${body.boundary}`,
      'content-length': body.length,
      ...(input.apiToken !== undefined ? { authorization: `Bearer ${input.apiToken}` } : {}),
      ...input.headers,
    },
    body: body.chunks(),
  });
}

/** A manifest as the CLI builds it for an iOS publish (reference 8.1), with a CLI-new key. */
export function cliManifest(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    app_name: 'MyApp',
    bundle_id: 'com.example.myapp',
    version: '42',
    short_version: '1.3.0',
    entry: 'src/main_ios.ts',
    icon: 'assets/icon.png',
    targets: ['ios'],
    category: 'public.app-category.utilities',
    minimum_os_version: null,
    entitlements: null,
    ios_deployment_target: '17.0',
    ios_device_family: ['iphone', 'ipad'],
    ios_distribute: 'testflight',
    ios_encryption_exempt: true,
    display_name: 'My App',
    ...overrides,
  });
}

/** A text-only multipart body of these parts. */
export function form(parts: [string, string][], boundary = 'b'): Buffer {
  return Buffer.from(
    parts
      .map(([name, value]) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`)
      .join('') + `--${boundary}--\r\n`,
  );
}

/** `count` bytes of a repeated chunk, generated as they are sent. */
export function repeated(chunk: Buffer, count: number) {
  return {
    length: count,
    chunks: async function* () {
      for (let sent = 0; sent < count; sent += chunk.length)
        yield chunk.subarray(0, Math.min(chunk.length, count - sent));
    },
  };
}

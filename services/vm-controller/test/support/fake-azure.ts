/**
 * A local fake of the two Azure endpoints the vm-controller talks to, served over https with a
 * certificate made at test time (the SDK refuses bearer tokens over http):
 * - the token authority: `/<tenant>/v2.0/.well-known/openid-configuration` and the token endpoint;
 * - ARM compute: `start` and `deallocate` (202 + Location, then the location answers 202 until the
 *   operation is done and 200 after), and `instanceView` with a PowerState status.
 * It keeps one VM per `<resource-group>/<vm>`, records every request, and can be told to answer
 * the next requests of a kind with errors (429 with Retry-After, 500).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Kind = 'openid' | 'token' | 'start' | 'deallocate' | 'instanceView' | 'operation' | 'other';
type Power = 'deallocated' | 'starting' | 'running' | 'deallocating';

export interface RecordedRequest {
  kind: Kind;
  method: string;
  path: string;
  status: number;
  at: number;
  vm?: string;
}

export interface FakeAzureOptions {
  /** How long a start takes (its operation answers 202 until then). */
  bootMs: number;
  stopMs: number;
}

interface Operation {
  doneAt: number;
}

export interface FakeAzure {
  readonly url: string;
  /** PEM file to trust through NODE_EXTRA_CA_CERTS. */
  readonly caFile: string;
  readonly requests: RecordedRequest[];
  /** Requests of a kind that were accepted (2xx). */
  accepted(kind: Kind): RecordedRequest[];
  attempts(kind: Kind): RecordedRequest[];
  power(vm: string): Power;
  setPower(vm: string, power: Power): void;
  /** Answer the next requests of this kind with these statuses, in order. */
  failNext(kind: Kind, statuses: number[]): void;
  close(): Promise<void>;
}

export const TENANT = '00000000-0000-4000-8000-0000000000aa';
export const SUBSCRIPTION = '00000000-0000-4000-8000-0000000000bb';

function makeCertificate(dir: string): { key: string; cert: string; certFile: string } {
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  return { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8'), certFile };
}

const VM_PATH =
  /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Compute\/virtualMachines\/([^/]+)\/(start|deallocate|instanceView)$/i;

export async function startFakeAzure(options: FakeAzureOptions): Promise<FakeAzure> {
  const dir = mkdtempSync(join(tmpdir(), 'perry-hub-fake-azure-'));
  const { key, cert, certFile } = makeCertificate(dir);
  const requests: RecordedRequest[] = [];
  const vms = new Map<string, { power: Power; until: number; next: Power }>();
  const operations = new Map<string, Operation>();
  const failures = new Map<Kind, number[]>();
  let opSeq = 0;
  let base = '';

  const vmState = (vm: string) => {
    let s = vms.get(vm);
    if (!s) vms.set(vm, (s = { power: 'deallocated', until: 0, next: 'deallocated' }));
    if (s.until > 0 && Date.now() >= s.until) Object.assign(s, { power: s.next, until: 0 });
    return s;
  };

  const send = (res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}) => {
    const text = body === undefined ? '' : JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  };

  const handle = (
    req: IncomingMessage,
    body: string,
    res: ServerResponse,
  ): { kind: Kind; status: number; vm?: string } => {
    const url = new URL(req.url ?? '/', base);
    const path = url.pathname;
    if (req.method === 'GET' && path === `/${TENANT}/v2.0/.well-known/openid-configuration`) {
      const issuer = `${base}/${TENANT}/v2.0`;
      send(res, 200, {
        issuer,
        token_endpoint: `${base}/${TENANT}/oauth2/v2.0/token`,
        authorization_endpoint: `${base}/${TENANT}/oauth2/v2.0/authorize`,
        end_session_endpoint: `${base}/${TENANT}/oauth2/v2.0/logout`,
        jwks_uri: `${base}/${TENANT}/discovery/v2.0/keys`,
        response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      });
      return { kind: 'openid', status: 200 };
    }
    if (req.method === 'POST' && path === `/${TENANT}/oauth2/v2.0/token`) {
      const form = new URLSearchParams(body);
      if (form.get('client_secret') !== 'test-secret') {
        send(res, 401, { error: 'invalid_client', error_description: 'bad secret' });
        return { kind: 'token', status: 401 };
      }
      send(res, 200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: 'fake-arm-token' });
      return { kind: 'token', status: 200 };
    }
    if (req.headers.authorization !== 'Bearer fake-arm-token') {
      send(res, 401, { error: { code: 'AuthenticationFailed', message: 'no token' } });
      return { kind: 'other', status: 401 };
    }
    if (req.method === 'GET' && path.startsWith('/operations/')) {
      const op = operations.get(path.slice('/operations/'.length));
      if (!op) {
        send(res, 404, { error: { code: 'NotFound', message: 'no such operation' } });
        return { kind: 'operation', status: 404 };
      }
      const done = Date.now() >= op.doneAt;
      send(res, done ? 200 : 202, undefined, done ? {} : { location: `${base}${path}` });
      return { kind: 'operation', status: done ? 200 : 202 };
    }
    const m = VM_PATH.exec(path);
    if (!m || m[1] !== SUBSCRIPTION) {
      send(res, 404, { error: { code: 'ResourceNotFound', message: path } });
      return { kind: 'other', status: 404 };
    }
    const vm = `${m[2]}/${m[3]}`;
    const kind = (m[4] === 'instanceView' ? 'instanceView' : m[4]) as Kind;
    const injected = failures.get(kind)?.shift();
    if (injected !== undefined) {
      send(
        res,
        injected,
        { error: { code: injected === 429 ? 'TooManyRequests' : 'InternalServerError', message: 'injected' } },
        injected === 429 ? { 'retry-after': '1' } : {},
      );
      return { kind, status: injected, vm };
    }
    const s = vmState(vm);
    if (kind === 'instanceView') {
      send(res, 200, { statuses: [{ code: 'ProvisioningState/succeeded' }, { code: `PowerState/${s.power}` }] });
      return { kind, status: 200, vm };
    }
    if (req.method !== 'POST') {
      send(res, 405, { error: { code: 'MethodNotAllowed', message: req.method } });
      return { kind, status: 405, vm };
    }
    const id = `op-${++opSeq}`;
    const takesMs = kind === 'start' ? options.bootMs : options.stopMs;
    if (kind === 'start' && s.power !== 'running')
      Object.assign(s, { power: 'starting', next: 'running', until: Date.now() + takesMs });
    if (kind === 'deallocate' && s.power !== 'deallocated')
      Object.assign(s, { power: 'deallocating', next: 'deallocated', until: Date.now() + takesMs });
    operations.set(id, { doneAt: s.until === 0 ? 0 : s.until });
    send(res, 202, undefined, { location: `${base}/operations/${id}` });
    return { kind, status: 202, vm };
  };

  const server = createServer({ key, cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const result = handle(req, Buffer.concat(chunks).toString('utf8'), res);
      requests.push({ ...result, method: req.method ?? '', path: req.url ?? '', at: Date.now() });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: base,
    caFile: certFile,
    requests,
    accepted: (kind) => requests.filter((r) => r.kind === kind && r.status >= 200 && r.status < 300),
    attempts: (kind) => requests.filter((r) => r.kind === kind),
    power: (vm) => vmState(vm).power,
    setPower: (vm, power) => Object.assign(vmState(vm), { power, until: 0 }),
    failNext: (kind, statuses) => failures.set(kind, [...(failures.get(kind) ?? []), ...statuses]),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

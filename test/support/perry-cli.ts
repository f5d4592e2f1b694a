/**
 * A client that does exactly what `perry publish` does against a hub (reference 4): the
 * text-only multipart upload in the CLI's part order, the WebSocket URL derived from the server
 * URL, `subscribe`, the CLI's reading of each message (unknown or incomplete messages skipped,
 * `error` terminal, `complete` ends, the last `artifact_ready` wins), CLI-new's reconnects, and
 * the download with its base64 sniffing. It returns a transcript instead of printing.
 *
 *   const result = await perryPublish({ server: 'http://127.0.0.1:3456', manifest, credentials,
 *     tarball, licenseKey: 'FREE-…' });
 *   expect(result.outcome).toBe('complete'); expect(result.artifact?.bytes).toEqual(...)
 */
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { WebSocket } from 'ws';
import { buildRequest, deriveWsUrl, parseServerMessage, sniffDownload, type ServerMessage } from './perry-cli-wire.js';

export { buildRequest, deriveWsUrl, parseServerMessage, sniffDownload, type ServerMessage } from './perry-cli-wire.js';

export interface PublishOptions {
  /** `--server`, e.g. `http://127.0.0.1:3456` (a trailing slash is kept, as the CLI keeps it). */
  readonly server: string;
  /** Objects are sent as JSON; strings verbatim. */
  readonly manifest: object | string;
  readonly credentials: object | string;
  /** The gzip tarball's bytes (sent as standard base64 text). */
  readonly tarball: Buffer;
  /** Sent as the `license_key` part, unless `apiToken` is given. */
  readonly licenseKey?: string;
  /** Logged-in CLI: `Authorization: Bearer <token>` and no `license_key` part. */
  readonly apiToken?: string;
  /** `--no-download` when false. */
  readonly download?: boolean;
  /** CLI-new reconnects on any end before a terminal message; CLI-old only on stream errors. */
  readonly flavor?: 'new' | 'old';
  /** Delay before reconnect n (1-based); the CLI waits min(2n, 30) s. */
  readonly reconnectDelayMs?: (attempt: number) => number;
  /** Consecutive failed reconnects before giving up (CLI: 60). */
  readonly maxReconnects?: number;
  /** The real CLI waits forever; tests should not. Default 120 s. */
  readonly timeoutMs?: number;
  /**
   * Where the CLI's WebSocket goes instead of `server` (its `/ws`): a split deployment's
   * worker-gateway, which a reverse proxy puts behind the same address in production.
   */
  readonly wsServer?: string;
  /** Called when the submission's 200 has arrived, with its job id (e.g. to time its dispatch). */
  readonly onAccepted?: (jobId: string) => void;
  /** Called with every accepted message, e.g. to kill things at the right moment. */
  readonly onMessage?: (message: ServerMessage, raw: string) => void;
  /**
   * Called as the artifact's bytes arrive (bytes so far, announced size); the next chunk is read
   * once it resolves, like a slow network: a test can hold a download open while it kills the hub.
   */
  readonly onDownloadProgress?: (receivedBytes: number, sizeBytes: number) => void | Promise<void>;
}

export type PublishOutcome =
  | 'complete'
  | 'error'
  | 'http-error'
  | 'bad-response'
  | 'disconnected'
  | 'timeout'
  /** The submission's request failed (refused, reset, cut): the CLI exits with reqwest's error. */
  | 'request-failed';

export interface PublishResult {
  readonly outcome: PublishOutcome;
  /** What the CLI would exit with: 0 only for a successful build whose artifact (or publication) arrived. */
  readonly exitCode: 0 | 1;
  /** The CLI's last words ("Build failed", "Build error [CODE]: message", ...). */
  readonly reason: string;
  readonly httpStatus: number;
  readonly httpBody: string;
  readonly jobId: string | undefined;
  readonly position: number | undefined;
  readonly wsUrl: string | undefined;
  /** Every WebSocket frame received, as text, across reconnects. */
  readonly transcript: string[];
  /** The frames the CLI understood (the others it skips silently), parsed. */
  readonly messages: ServerMessage[];
  /** Successful WebSocket connections (1 + reconnects). */
  readonly connections: number;
  readonly success: boolean | undefined;
  readonly published: boolean;
  readonly artifact: { name: string; url: string; bytes: Buffer } | undefined;
  /** `request-failed`: the transport error's code (`ECONNREFUSED`: nothing was sent). */
  readonly requestError: string | undefined;
  /** The artifact link the CLI tried, when its download failed (to retry it by hand). */
  readonly failedDownload: string | undefined;
}

export async function perryPublish(options: PublishOptions): Promise<PublishResult> {
  const result = {
    outcome: 'timeout' as PublishOutcome,
    exitCode: 1 as 0 | 1,
    reason: '',
    httpStatus: 0,
    httpBody: '',
    jobId: undefined as string | undefined,
    position: undefined as number | undefined,
    wsUrl: undefined as string | undefined,
    transcript: [] as string[],
    messages: [] as ServerMessage[],
    connections: 0,
    success: undefined as boolean | undefined,
    published: false,
    artifact: undefined as PublishResult['artifact'],
    requestError: undefined as string | undefined,
    failedDownload: undefined as string | undefined,
  };
  const request = buildRequest(options);
  let res: Response;
  try {
    res = await fetch(`${options.server}/api/v1/build`, request);
    result.httpStatus = res.status;
    result.httpBody = await res.text();
  } catch (err) {
    result.outcome = 'request-failed';
    result.requestError = transportError(err);
    result.reason = `error sending request: ${result.requestError}`;
    return result;
  }
  if (!res.ok) {
    const code = errorCode(result.httpBody);
    result.outcome = 'http-error';
    result.reason =
      code === 'PUBLISH_LIMIT_REACHED'
        ? 'Publish limit reached'
        : code === 'ACCOUNT_REQUIRED'
          ? 'Account required'
          : `Build server returned ${res.status}: ${result.httpBody}`;
    return result;
  }
  const created = parseCreated(result.httpBody);
  if (!created) {
    result.outcome = 'bad-response';
    result.reason = `Failed to parse build response: ${result.httpBody}`;
    return result;
  }
  result.jobId = created.job_id;
  result.position = created.position;
  options.onAccepted?.(created.job_id);
  result.wsUrl = deriveWsUrl(options.wsServer ?? options.server, created.ws_url);

  let lastArtifact: { name: string; url: string; size: number } | undefined;
  const ended = await watch(result.wsUrl, created.job_id, options, result, (m) => {
    if (m.type === 'artifact_ready')
      lastArtifact = { name: m.artifact_name, url: m.download_url, size: m.artifact_size };
    if (m.type === 'published') result.published = true;
  });
  if (ended.type === 'error') {
    result.outcome = 'error';
    result.reason = `Build error [${ended.code}]: ${ended.message}`;
    return result;
  }
  if (ended.type !== 'complete') {
    result.outcome = ended.type;
    result.reason = ended.type === 'timeout' ? 'timed out' : 'Build failed';
    return result;
  }
  result.outcome = 'complete';
  result.success = ended.success;
  if (!ended.success) {
    result.reason = 'Build failed';
    return result;
  }
  if (options.download !== false && lastArtifact) {
    if (!/^[^/\\]+$/.test(lastArtifact.name) || lastArtifact.name === '.' || lastArtifact.name === '..') {
      result.reason = `Refusing unsafe artifact name: ${lastArtifact.name}`;
      return result;
    }
    const url = /^https?:\/\//.test(lastArtifact.url) ? lastArtifact.url : `${options.server}${lastArtifact.url}`;
    let body: Buffer;
    try {
      const got = await download(url, lastArtifact.size, options.onDownloadProgress);
      body = got.body;
      if (got.status < 200 || got.status > 299) {
        result.reason = `Download failed: ${got.status}`;
        result.failedDownload = url;
        return result;
      }
    } catch (err) {
      result.reason = `Download failed: ${transportError(err)}`;
      result.failedDownload = url;
      return result;
    }
    result.artifact = { name: lastArtifact.name, url, bytes: sniffDownload(body) };
  }
  if (options.download !== false && !result.artifact && !result.published) {
    result.reason = 'Build reported success but no artifact was received';
    return result;
  }
  result.exitCode = 0;
  result.reason = 'Ready';
  return result;
}

type Ended =
  | Extract<ServerMessage, { type: 'complete' }>
  | Extract<ServerMessage, { type: 'error' }>
  | { type: 'disconnected' }
  | { type: 'timeout' };

/** The WebSocket loop of CLI-new (mod.rs ~57000-61500), or CLI-old's simpler one. */
async function watch(
  url: string,
  jobId: string,
  options: PublishOptions,
  result: { transcript: string[]; messages: ServerMessage[]; connections: number },
  remember: (m: ServerMessage) => void,
): Promise<Ended> {
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  const delay = options.reconnectDelayMs ?? ((n: number) => Math.min(2 * n, 30) * 1000);
  let failures = 0;
  for (;;) {
    const once = await connectOnce(url, jobId, deadline, result, remember, options.onMessage);
    if (once.ended) return once.ended;
    if (once.connected) failures = 0;
    else if (result.connections === 0) return { type: 'disconnected' }; // the first connect is not retried
    // CLI-old: a close frame or end of stream just ends the loop.
    if (options.flavor === 'old' && !once.abnormal) return { type: 'disconnected' };
    failures++;
    if (failures > (options.maxReconnects ?? 60)) return { type: 'disconnected' };
    const wait = delay(failures);
    if (Date.now() + wait > deadline) return { type: 'timeout' };
    await new Promise((r) => setTimeout(r, wait));
  }
}

function connectOnce(
  url: string,
  jobId: string,
  deadline: number,
  result: { transcript: string[]; messages: ServerMessage[]; connections: number },
  remember: (m: ServerMessage) => void,
  onMessage: PublishOptions['onMessage'],
): Promise<{ ended?: Ended; connected: boolean; abnormal: boolean }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    let connected = false;
    let ended: Ended | undefined;
    const timer = setTimeout(() => finish({ type: 'timeout' }), Math.max(0, deadline - Date.now()));
    const finish = (end: Ended | undefined, abnormal = false) => {
      clearTimeout(timer);
      if (end) ended ??= end;
      ws.removeAllListeners();
      ws.on('error', () => undefined);
      ws.terminate();
      resolve({ ended, connected, abnormal });
    };
    ws.on('open', () => {
      connected = true;
      result.connections++;
      ws.send(JSON.stringify({ type: 'subscribe', job_id: jobId }));
    });
    ws.on('message', (data: Buffer) => {
      const raw = data.toString('utf8');
      result.transcript.push(raw);
      const message = parseServerMessage(raw);
      if (!message) return; // fails serde: skipped silently
      result.messages.push(message);
      remember(message);
      onMessage?.(message, raw);
      if (message.type === 'error' || message.type === 'complete') finish(message);
    });
    ws.on('error', () => undefined);
    ws.on('close', (code: number) => finish(undefined, code === 1006));
  });
}

/**
 * A GET as the CLI's reqwest does it (over hyper): the body is complete once its Content-Length
 * arrived, whatever the socket does next. Node's http client behaves so; fetch (undici) may fail
 * a body that fully arrived when the server's socket closes at that moment (a hub killed just
 * after sending), dropping what it buffered. `progress` may hold the reading back.
 */
export function download(
  url: string,
  sizeBytes = 0,
  progress?: PublishOptions['onDownloadProgress'],
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? httpsGet : httpGet)(url, (res) => {
      const chunks: Buffer[] = [];
      let received = 0;
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        received += chunk.length;
        const held = progress?.(received, sizeBytes);
        if (held) {
          res.pause();
          void held.then(() => res.resume());
        }
      });
      res.on('end', () => {
        if (res.complete) resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) });
        else reject(Object.assign(new Error('the body ended early'), { code: 'UND_ERR_SOCKET' }));
      });
      res.on('error', reject);
      res.on('aborted', () => reject(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })));
    });
    req.on('error', reject);
  });
}

/** What failed under fetch or http: the socket error's code when there is one. */
function transportError(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (typeof cause?.code === 'string') return cause.code;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  return String(cause?.message ?? (err as Error).message ?? err);
}

function errorCode(body: string): string | undefined {
  try {
    return (JSON.parse(body) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

/** `{job_id, ws_url, position}`: all three are required by the CLI's struct. */
function parseCreated(body: string): { job_id: string; ws_url: string; position: number } | undefined {
  try {
    const v = JSON.parse(body) as Record<string, unknown>;
    if (typeof v['job_id'] !== 'string' || typeof v['ws_url'] !== 'string') return undefined;
    const position = v['position'];
    if (typeof position !== 'number' || !Number.isInteger(position) || position < 0) return undefined;
    return { job_id: v['job_id'], ws_url: v['ws_url'], position };
  } catch {
    return undefined;
  }
}

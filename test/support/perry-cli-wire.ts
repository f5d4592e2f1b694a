/**
 * The CLI's wire details, separately testable: the reqwest multipart body, the WebSocket URL
 * derivation (mod.rs ~55500), serde's reading of `ServerMessage` (server_api.rs) and the base64
 * sniffing of downloads (reference 4.2, 4.3, 4.4, 4.6).
 */
import { randomBytes } from 'node:crypto';

export interface RequestParts {
  readonly manifest: object | string;
  readonly credentials: object | string;
  readonly tarball: Buffer;
  readonly licenseKey?: string;
  readonly apiToken?: string;
}

/**
 * reqwest's multipart: a `{:016x}-{:016x}-{:016x}-{:016x}` boundary, text parts without a
 * content type, in the CLI's order: manifest, credentials, tarball_b64, then license_key unless
 * the CLI authenticates with its API token.
 */
export function buildRequest(parts: RequestParts): RequestInit & { body: Buffer; headers: Record<string, string> } {
  const boundary = Array.from({ length: 4 }, () => randomBytes(8).toString('hex')).join('-');
  const text = (v: object | string) => (typeof v === 'string' ? v : JSON.stringify(v));
  const fields: [string, string][] = [
    ['manifest', text(parts.manifest)],
    ['credentials', text(parts.credentials)],
    ['tarball_b64', parts.tarball.toString('base64')],
  ];
  if (parts.apiToken === undefined && parts.licenseKey !== undefined) fields.push(['license_key', parts.licenseKey]);
  const body = Buffer.from(
    fields
      .map(([name, value]) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`)
      .join('') + `--${boundary}--\r\n`,
    'utf8',
  );
  const headers: Record<string, string> = {
    'content-type': `multipart/form-data; boundary=${boundary}`,
    accept: '*/*',
  };
  if (parts.apiToken !== undefined) headers['authorization'] = `Bearer ${parts.apiToken}`;
  return { method: 'POST', headers, body };
}

/**
 * Absolute `ws_url`s are used as they are; otherwise `https://` becomes `wss://`, and anything
 * else loses its first seven characters (`http://`) to `ws://`. A trailing slash on the server
 * gives `//ws`, as with the real CLI.
 */
export function deriveWsUrl(server: string, wsUrl: string): string {
  if (wsUrl.startsWith('ws://') || wsUrl.startsWith('wss://')) return wsUrl;
  if (server.startsWith('https://')) return `wss://${server.slice('https://'.length)}${wsUrl}`;
  return `ws://${server.slice(7)}${wsUrl}`;
}

export type ServerMessage =
  | { type: 'job_created'; job_id: string; position: number; estimated_wait_secs?: number | null }
  | { type: 'queue_update'; position: number; estimated_wait_secs?: number | null }
  | { type: 'stage'; stage: string; message: string }
  | { type: 'log'; stage: string; line: string; stream: string }
  | { type: 'progress'; stage: string; percent: number; message?: string | null }
  | {
      type: 'artifact_ready';
      artifact_name: string;
      artifact_size: number;
      sha256: string;
      download_url: string;
      expires_in_secs: number;
      download_path?: string | null;
    }
  | { type: 'published'; platform: string; message: string; url?: string | null }
  | { type: 'error'; code: string; message: string; stage?: string | null }
  | { type: 'complete'; job_id: string; success: boolean; duration_secs: number; artifacts: unknown[] };

const str = (v: unknown) => typeof v === 'string';
const uint = (v: unknown, max = Number.MAX_SAFE_INTEGER) =>
  Number.isInteger(v) && (v as number) >= 0 && (v as number) <= max;
const optional = (v: unknown, check: (v: unknown) => boolean) => v === undefined || v === null || check(v);

/** Required fields per variant (4.4); anything else fails serde and the CLI skips it. */
const SHAPES: Record<string, (m: Record<string, unknown>) => boolean> = {
  job_created: (m) => str(m['job_id']) && uint(m['position']) && optional(m['estimated_wait_secs'], uint),
  queue_update: (m) => uint(m['position']) && optional(m['estimated_wait_secs'], uint),
  stage: (m) => str(m['stage']) && str(m['message']),
  log: (m) => str(m['stage']) && str(m['line']) && str(m['stream']),
  progress: (m) => str(m['stage']) && uint(m['percent'], 255) && optional(m['message'], str),
  artifact_ready: (m) =>
    str(m['artifact_name']) &&
    uint(m['artifact_size']) &&
    str(m['sha256']) &&
    str(m['download_url']) &&
    uint(m['expires_in_secs']) &&
    optional(m['download_path'], str),
  published: (m) => str(m['platform']) && str(m['message']) && optional(m['url'], str),
  error: (m) => str(m['code']) && str(m['message']) && optional(m['stage'], str),
  complete: (m) =>
    str(m['job_id']) &&
    typeof m['success'] === 'boolean' &&
    typeof m['duration_secs'] === 'number' &&
    Array.isArray(m['artifacts']),
};

export function parseServerMessage(text: string): ServerMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const m = value as Record<string, unknown>;
  const check = typeof m['type'] === 'string' ? SHAPES[m['type']] : undefined;
  return check?.(m) ? (m as ServerMessage) : undefined;
}

const BASE64_OR_NEWLINE = /^[A-Za-z0-9+/=\r\n]+$/;

/**
 * Bodies longer than 4 bytes made only of base64 characters and CR/LF are decoded as standard
 * base64; if that fails (strictly: bad length or padding) the raw bytes are kept.
 */
export function sniffDownload(body: Buffer): Buffer {
  if (body.length <= 4 || !BASE64_OR_NEWLINE.test(body.toString('latin1'))) return body;
  const text = body.toString('latin1').replace(/[\r\n]/g, '');
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return body;
  return Buffer.from(text, 'base64');
}

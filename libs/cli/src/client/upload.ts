/**
 * The submission exactly as `perry publish` sends it (reference 4.2): a text-only multipart body
 * with reqwest's boundary shape and the CLI's part order (manifest, credentials, tarball_b64 as
 * standard base64, then license_key unless an API token goes in `Authorization`), sent with a
 * known length so an upload progress bar can follow it.
 */
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { CliError, EXIT } from './common.js';
import { refused, unreachable } from './http.js';

export interface Submission {
  readonly manifest: object;
  readonly credentials: object;
  readonly tarball: Buffer;
  readonly licenseKey?: string;
  readonly apiToken?: string;
}

export interface BuildAccepted {
  readonly job_id: string;
  readonly ws_url: string;
  readonly position: number;
}

export function multipart(s: Submission): { body: Buffer; headers: Record<string, string> } {
  const boundary = Array.from({ length: 4 }, () => randomBytes(8).toString('hex')).join('-');
  const fields: [string, string][] = [
    ['manifest', JSON.stringify(s.manifest)],
    ['credentials', JSON.stringify(s.credentials)],
    ['tarball_b64', s.tarball.toString('base64')],
  ];
  if (s.apiToken === undefined && s.licenseKey !== undefined) fields.push(['license_key', s.licenseKey]);
  const body = Buffer.from(
    fields
      .map(([name, value]) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`)
      .join('') + `--${boundary}--\r\n`,
    'utf8',
  );
  const headers: Record<string, string> = {
    'content-type': `multipart/form-data; boundary=${boundary}`,
    'content-length': String(body.length),
    accept: '*/*',
  };
  if (s.apiToken !== undefined) headers['authorization'] = `Bearer ${s.apiToken}`;
  return { body, headers };
}

const CHUNK_BYTES = 64 * 1024;

/** POST /api/v1/build; `onProgress(sent, total)` as the body goes out. */
export function submitBuild(
  server: string,
  submission: Submission,
  onProgress: (sent: number, total: number) => void,
): Promise<BuildAccepted> {
  const { body, headers } = multipart(submission);
  const url = new URL(`${server}/api/v1/build`);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers }, (res: IncomingMessage) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('error', (err) => reject(unreachable(server, err)));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status >= 300) return reject(refused(status, text, 'the build'));
        try {
          const v = JSON.parse(text) as BuildAccepted;
          if (typeof v.job_id !== 'string' || typeof v.ws_url !== 'string') throw new Error('incomplete');
          resolve(v);
        } catch {
          reject(new CliError(`the hub accepted the build with an answer that is not understood: ${text}`, EXIT.hub));
        }
      });
    });
    req.on('error', (err) => reject(unreachable(server, { cause: err })));
    let sent = 0;
    const writeMore = () => {
      while (sent < body.length) {
        const chunk = body.subarray(sent, sent + CHUNK_BYTES);
        sent += chunk.length;
        onProgress(sent, body.length);
        if (!req.write(chunk)) return void req.once('drain', writeMore);
      }
      req.end();
    };
    writeMore();
  });
}

/**
 * Artifact transfer through the worker routes on a running job: upload as base64 text (what the
 * Rust workers send) and as raw `application/octet-stream`, then download each through its
 * one-time link, as base64 (what the CLI gets) and raw (`Accept: application/octet-stream`).
 * Figures are MiB/s of artifact bytes (decoded), client-side, from request start to last byte,
 * the median of RUNS transfers each, with the CPU the hub and nats-server spent per MiB (from
 * /proc, steadier than times on a shared machine).
 */
import { createHash } from 'node:crypto';
import { request, type RequestOptions } from 'node:http';
import type { Assignment } from './fleet.js';
import { cpuSecs } from './stack.js';

const RUNS = 3;

export interface TransferFigure {
  /** MiB/s, the median of RUNS. */
  readonly mibPerSec: number;
  /** CPU milliseconds per MiB, over all RUNS. */
  readonly cpuMsPerMiB: Record<string, number>;
}

export interface TransferRun {
  readonly uploadBase64: TransferFigure;
  readonly uploadRaw: TransferFigure;
  readonly downloadBase64: TransferFigure;
  readonly downloadRaw: TransferFigure;
}

const mibPerSec = (bytes: number, ms: number) => bytes / 2 ** 20 / (ms / 1000);

/** node:http rather than fetch: on two cores, the client's own CPU would otherwise be the limit. */
function exchange(
  url: string,
  options: RequestOptions,
  body?: Buffer,
): Promise<{ status: number; chunks: Buffer[]; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, chunks, ms: performance.now() - t0 }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function upload(job: Assignment, data: Buffer, raw: boolean): Promise<{ url: string; ms: number }> {
  const sha256 = createHash('sha256').update(data).digest('hex');
  const body = raw ? data : Buffer.from(data.toString('base64'), 'latin1');
  const res = await exchange(
    job.uploadUrl,
    {
      method: 'POST',
      headers: {
        authorization: `Bearer ${job.authToken}`,
        'content-type': raw ? 'application/octet-stream' : 'text/plain',
        'content-length': body.length,
        'x-artifact-name': raw ? 'bench-raw.AppImage' : 'bench-b64.AppImage',
        'x-artifact-sha256': sha256,
        'x-artifact-target': 'linux',
      },
    },
    body,
  );
  const text = Buffer.concat(res.chunks).toString('utf8');
  if (res.status !== 200) throw new Error(`artifact upload failed: ${res.status} ${text}`);
  return { url: (JSON.parse(text) as { download_url: string }).download_url, ms: res.ms };
}

/** Times the transfer; checks the bytes afterwards. */
async function download(url: string, data: Buffer, raw: boolean): Promise<number> {
  const res = await exchange(url, raw ? { headers: { accept: 'application/octet-stream' } } : {});
  const body = Buffer.concat(res.chunks);
  const bytes = raw ? body : Buffer.from(body.toString('latin1'), 'base64');
  if (res.status !== 200 || !bytes.equals(data)) {
    throw new Error(`artifact download failed: ${res.status}, ${body.length} bytes`);
  }
  return res.ms;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

export async function transferRun(
  job: Assignment,
  data: Buffer,
  pids: Record<string, number | undefined>,
): Promise<TransferRun> {
  // Warm-up: the first pass through each route (JIT, buffers) is not what is measured.
  const small = data.subarray(0, 8 * 2 ** 20);
  await download((await upload(job, small, false)).url, small, false);
  await download((await upload(job, small, true)).url, small, true);
  const mib = data.length / 2 ** 20;
  const measure = async (transfer: () => Promise<number>): Promise<TransferFigure> => {
    const before = Object.entries(pids).map(([name, pid]) => [name, cpuSecs(pid)] as const);
    const ms: number[] = [];
    for (let i = 0; i < RUNS; i++) ms.push(await transfer());
    const cpuMsPerMiB = Object.fromEntries(
      before.map(([name, secs]) => [name, ((cpuSecs(pids[name]) - secs) * 1000) / (mib * RUNS)]),
    );
    return { mibPerSec: mibPerSec(data.length, median(ms)), cpuMsPerMiB };
  };
  const urls: Record<'b64' | 'raw', string[]> = { b64: [], raw: [] };
  const up = (raw: boolean) => async () => {
    const { url, ms } = await upload(job, data, raw);
    urls[raw ? 'raw' : 'b64'].push(url);
    return ms;
  };
  const uploadBase64 = await measure(up(false));
  const uploadRaw = await measure(up(true));
  const down = (raw: boolean) => async () => download(urls[raw ? 'raw' : 'b64'].shift()!, data, raw);
  const downloadBase64 = await measure(down(false));
  const downloadRaw = await measure(down(true));
  return { uploadBase64, uploadRaw, downloadBase64, downloadRaw };
}

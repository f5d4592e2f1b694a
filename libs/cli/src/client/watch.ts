/**
 * Following a job over the WebSocket as the CLI does (`{"type":"subscribe","job_id"}` on `/ws` of
 * the HTTP origin): every message in order, history first. A connection that drops before the
 * job ended is opened again; the hub replays the history, so the messages already seen are
 * skipped.
 */
import { WebSocket } from 'ws';

export type JobMessage = Record<string, unknown> & { type: string };

export interface WatchOptions {
  /** Called for each message in order; return true to stop watching (a terminal message). */
  readonly onMessage: (message: JobMessage) => boolean;
  /** Reconnects after a drop before giving up (10). */
  readonly maxReconnects?: number;
  /** Called when a connection dropped and another is tried. */
  readonly onReconnect?: (attempt: number, delayMs: number) => void;
}

export type WatchEnd = 'ended' | 'disconnected' | 'unreachable';

/** `ws_url` as the CLI resolves it against the server URL (reference 4.3, without its `//ws` quirk). */
export function wsUrlOf(server: string, wsUrl: string): string {
  if (/^wss?:\/\//.test(wsUrl)) return wsUrl;
  return `${server.replace(/^http/, 'ws').replace(/\/+$/, '')}${wsUrl.startsWith('/') ? '' : '/'}${wsUrl}`;
}

export async function watchJob(url: string, jobId: string, options: WatchOptions): Promise<WatchEnd> {
  let seen = 0;
  let failures = 0;
  let everConnected = false;
  for (;;) {
    const once = await connectOnce(url, jobId, seen, options.onMessage);
    seen = once.seen;
    if (once.ended) return 'ended';
    if (once.connected) {
      everConnected = true;
      failures = 0;
    }
    failures++;
    if (failures > (options.maxReconnects ?? 10)) return everConnected ? 'disconnected' : 'unreachable';
    const delayMs = Math.min(1_000 * 2 ** (failures - 1), 10_000);
    options.onReconnect?.(failures, delayMs);
    await new Promise((r) => setTimeout(r, delayMs));
  }
}

function connectOnce(
  url: string,
  jobId: string,
  skip: number,
  onMessage: WatchOptions['onMessage'],
): Promise<{ ended: boolean; connected: boolean; seen: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    let index = 0;
    let seen = skip;
    let connected = false;
    let ended = false;
    const finish = () => {
      ws.removeAllListeners();
      ws.on('error', () => undefined);
      ws.terminate();
      resolve({ ended, connected, seen });
    };
    ws.on('open', () => {
      connected = true;
      ws.send(JSON.stringify({ type: 'subscribe', job_id: jobId }));
    });
    ws.on('message', (data: Buffer) => {
      let message: unknown;
      try {
        message = JSON.parse(data.toString('utf8'));
      } catch {
        return;
      }
      if (typeof message !== 'object' || message === null || typeof (message as JobMessage).type !== 'string') return;
      index++;
      if (index <= seen) return; // replayed history already shown
      seen = index;
      if (onMessage(message as JobMessage)) {
        ended = true;
        finish();
      }
    });
    ws.on('error', () => undefined);
    ws.on('close', () => finish());
  });
}

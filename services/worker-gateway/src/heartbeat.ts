/**
 * One timer for every connection of the instance (10,000 idle workers must not mean 10,000
 * timers). Each sweep pings who is due (the original never pinged; the macOS worker drops a
 * connection silent for 90 s), closes who stayed silent past the lost limit (the original relied
 * on TCP, which can take hours to notice a dead peer), refreshes presence heartbeats and sends
 * the job activity batch. With no connection at all it does not run: an idle gateway has no
 * timer waking it.
 */
import type { GatewayContext } from './context.js';
import type { WsFrontDoor } from './server.js';
import { WorkerSession } from './worker-session.js';

/**
 * Pings go out often enough for the lost limit, whatever the configured interval: the Linux worker
 * never speaks while idle or compiling, so our pings (and its pongs) are all that keeps it heard.
 */
export function pingEveryMs(config: GatewayContext['config']): number {
  return Math.max(50, Math.min(config.pingIntervalMs, Math.floor(config.workerLostMs / 3)));
}

export function sweepIntervalMs(config: GatewayContext['config']): number {
  return Math.max(50, Math.min(1_000, Math.floor(config.workerLostMs / 4), Math.floor(pingEveryMs(config) / 2)));
}

export function startHeartbeat(ctx: GatewayContext, door: WsFrontDoor): () => void {
  const { config, notices } = ctx;
  const pingMs = pingEveryMs(config);
  let lastActivityAt = Date.now();

  const sweep = () => {
    const now = Date.now();
    for (const conn of door.connections) {
      if (conn.closed) continue;
      if (conn.paused) conn.heard(); // we stopped reading: its silence is ours
      if (now - conn.lastHeardAt > config.workerLostMs) {
        notices.note('silent connection closed', { remote: conn.remote, silentMs: now - conn.lastHeardAt });
        conn.terminate();
        continue;
      }
      if (!conn.session && now - conn.openedAt > config.workerLostMs) {
        conn.close(1008, 'no hello');
        continue;
      }
      if (now - conn.lastPingAt >= pingMs) {
        conn.lastPingAt = now;
        try {
          conn.ws.ping();
        } catch {
          // closing meanwhile; the close event cleans up
        }
      }
      if (conn.session instanceof WorkerSession) conn.session.tick(now);
    }
    if (now - lastActivityAt >= config.activityIntervalMs) {
      lastActivityAt = now;
      ctx.activity.flush(now);
    }
    if (door.connections.size === 0 && !ctx.activity.pending) {
      clearInterval(timer);
      timer = undefined;
    }
  };
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const arm = () => {
    if (timer === undefined && !stopped) timer = setInterval(sweep, sweepIntervalMs(config));
  };
  door.onConnection = arm;
  if (door.connections.size > 0) arm();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

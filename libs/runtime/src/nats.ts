import { connect } from '@nats-io/transport-node';
import { errors, type NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import { natsAuth, natsTls, type NatsAuthOptions } from './nats-credentials.js';
import { cancelRequestsWithoutStacks } from './nats-request-cancel.js';

export type { NatsConnection } from '@nats-io/nats-core';

export interface NatsOptions extends NatsAuthOptions {
  natsUrl: string;
}

export interface NatsIdentityOptions {
  /** Who connects: picks `<identity>.nk` in the credentials directory. */
  identity: string;
  /** Private inbox (see natsInboxPrefix in contracts): replies to others are not readable. */
  inboxPrefix?: string;
}

/**
 * After a reconnect, a refused reply to an inbox is taken for the answer to a request the server
 * delivered before it (it forgot the request): the longest a handler works on one, with its
 * retries, is about 30 s.
 */
const STALE_REPLY_MS = 60_000;

/**
 * Connect with unlimited reconnects: a NATS restart must not take a service down. The initial
 * connect is retried too (`waitOnFirstConnect`), so services may start before the server.
 * Credentials are checked before connecting, so a bad seed file is a ConfigError.
 */
export async function connectNats(
  options: NatsOptions,
  name: string,
  log: Logger,
  who: NatsIdentityOptions = { identity: 'hub' },
): Promise<NatsConnection> {
  const auth = natsAuth(options, who.identity);
  const tls = natsTls(options);
  cancelRequestsWithoutStacks();
  const nc = await connect({
    servers: options.natsUrl
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    name,
    ...auth,
    ...tls,
    ...(who.inboxPrefix ? { inboxPrefix: who.inboxPrefix } : {}),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: true,
    timeout: 10_000,
    // Otherwise every request builds two Errors (stack traces included) up front in case it
    // fails: about half the CPU of a request/reply (17 µs instead of 33-41 µs on the 2-core bench
    // machine), paid on every hop of every job. Errors keep their message and cause; they lose
    // the caller's async stack.
    noAsyncTraces: true,
  });
  let reconnectedAt = -Infinity;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnecting') log.warn({ nats: s.type }, 'NATS connection lost');
      else if (s.type === 'reconnect') {
        reconnectedAt = Date.now();
        log.info({ nats: s.type }, 'NATS reconnected');
      } else if (s.type === 'error' && s.error instanceof errors.PermissionViolationError) {
        const { operation, subject, queue } = s.error;
        if (operation === 'publish' && subject.startsWith('_INBOX.') && Date.now() - reconnectedAt < STALE_REPLY_MS) {
          // A reply is allowed only to a request the server delivered; one that restarted since
          // knows nothing of a request answered late. Its requester gave up on it meanwhile.
          log.warn(
            { nats: 'permissions', operation, subject },
            'a reply to a request from before the NATS reconnect was refused (the server no longer knows the request)',
          );
        } else {
          // A subject the bus declaration (libs/contracts bus.ts, topology.ts) does not grant.
          log.error({ nats: 'permissions', operation, subject, queue }, 'NATS permissions violation');
        }
      } else if (s.type === 'error') log.error({ nats: s.type, err: s.error }, 'NATS error');
    }
  })().catch(() => undefined);
  return nc;
}

/**
 * Reconnect to a different server of the connection's list (one cut off from the rest of its
 * cluster, say). nats.js may pick the same server again after shuffling its pool, so this asks
 * again until the server differs, at most once per other server.
 */
export async function moveToAnotherServer(
  nc: Pick<NatsConnection, 'reconnect' | 'getServer' | 'status' | 'getServers'>,
  log: Pick<Logger, 'info' | 'warn'>,
  timeoutMs = 10_000,
): Promise<void> {
  const from = nc.getServer();
  for (let tries = Math.max(1, nc.getServers().length - 1); tries > 0; tries--) {
    const statuses = nc.status();
    // nats.js's status iterator stops (and unregisters) with stop(), which its type does not show.
    const stop = () => (statuses as { stop?: () => void }).stop?.();
    const reconnected = (async () => {
      for await (const s of statuses) if (s.type === 'reconnect') return true;
      return false;
    })();
    const timer = setTimeout(stop, timeoutMs);
    try {
      await nc.reconnect();
      if (!(await reconnected)) return log.warn({ from }, 'NATS did not reconnect in time');
    } finally {
      clearTimeout(timer);
      stop();
    }
    if (nc.getServer() !== from) return log.info({ from, to: nc.getServer() }, 'NATS moved to another server');
  }
}

/** The inbox prefix a connection was opened with (for hand-made reply subjects). */
export function inboxPrefixOf(nc: NatsConnection): string {
  return (nc as unknown as { options?: { inboxPrefix?: string } }).options?.inboxPrefix || '_INBOX';
}

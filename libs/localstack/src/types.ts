import type { NatsUser } from './nats-config.js';

/** A server running as a child process of this one. */
export interface ChildServer {
  /** The server's own pid (not the watchdog's). */
  readonly pid: number;
  /**
   * SIGTERM, wait up to the shutdown timeout, then SIGKILL. Idempotent: later calls return the
   * same promise, and calling it after the server died on its own is fine.
   */
  stop(): Promise<void>;
  /** Settles when the server has exited: its exit code, or null when it could not be known. */
  readonly exited: Promise<number | null>;
}

export interface NatsServer extends ChildServer {
  readonly url: string;
  readonly port: number;
  /** The JetStream store, `<dataDir>/jetstream`; reused as-is across restarts. */
  readonly storeDir: string;
  /** `http://127.0.0.1:<port>` of the monitoring endpoints (`/varz`, `/jsz`, ...), when enabled. */
  readonly monitorUrl?: string;
}

export interface NatsServerOptions {
  dataDir: string;
  /** 0 or absent: a random free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Appended to; without it the output is discarded (a short tail is kept for error messages). */
  logFile?: string;
  maxPayloadBytes?: number;
  /**
   * Port of nats-server's HTTP monitoring endpoints (`/varz`, `/connz`, `/jsz`, ...), always
   * bound to loopback whatever `host` is: they need no credentials and name every connection.
   * Absent: no monitoring. 0: a free port.
   */
  monitorPort?: number;
  /**
   * Clients must authenticate as one of these users, all inside one account (`HUB_ACCOUNT`).
   * Absent: no authentication (a loopback-only server for localstack's own tests).
   */
  users?: readonly NatsUser[];
  /**
   * `jetstream { sync_interval: always }`: every acknowledged write is fsynced, so it survives
   * an OS crash, not only a process crash. Default false.
   */
  syncAlways?: boolean;
  /** One node of a cluster: its route port and the other nodes' route URLs. */
  cluster?: NatsClusterNode;
  /**
   * Run this configuration (e.g. a file of `infra/nats/`) instead of rendering one: its text is
   * copied to `<dataDir>/nats.conf`, `users` are written beside it as `accounts.conf` (for its
   * `include ./accounts.conf`), and the server gets `env` for the text's `$VARIABLES`. The text
   * must listen on `host:port` and, with `cluster`, be named `cluster.serverName`.
   */
  template?: { readonly text: string; readonly env: Readonly<Record<string, string>> };
  /**
   * Run the server inside this network namespace (`ip netns exec`, needs root): tests cut its
   * links to play a network partition. `host` must then be an address of that namespace.
   */
  netns?: string;
  /** Default 10 s. */
  readyTimeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL, on stop() and when this process dies. Default 10 s. */
  shutdownTimeoutMs?: number;
}

export interface NatsClusterNode {
  /** The cluster's name, the same on every node. */
  readonly name: string;
  /** This node's name: JetStream places replicas by it, so it must stay the same across restarts. */
  readonly serverName: string;
  /** This node's route port (on `routeHost`). */
  readonly routePort: number;
  /** Where this node listens for routes; its client host when absent. */
  readonly routeHost?: string;
  /** Route URLs of the other nodes, e.g. `nats-route://127.0.0.1:6223`. */
  readonly routes: readonly string[];
}

export interface MariaDbServer extends ChildServer {
  readonly host: string;
  readonly port: number;
  readonly socketPath: string;
  readonly user: 'root';
  readonly password: '';
  readonly dataDir: string;
}

export interface MariaDbOptions {
  dataDir: string;
  /** 0 or absent: a random free port. */
  port?: number;
  logFile?: string;
  /** Default 60 s: crash recovery of a large InnoDB log can be slow. */
  readyTimeoutMs?: number;
  /**
   * Default true. false trades the last second of commits on an OS crash (not a process crash)
   * for speed: for throwaway test databases.
   */
  durable?: boolean;
  /** Grace between SIGTERM and SIGKILL, on stop() and when this process dies. Default 30 s. */
  shutdownTimeoutMs?: number;
}

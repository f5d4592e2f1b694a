/**
 * nats-server and MariaDB as ordinary child processes with private data directories, for the
 * all-in-one `perry-hub start` and for the test kit. Servers never outlive this process (a
 * watchdog stops them when it dies, even by SIGKILL), and a start after a crash needs no repair.
 */
export type {
  ChildServer,
  MariaDbOptions,
  MariaDbServer,
  NatsClusterNode,
  NatsServer,
  NatsServerOptions,
} from './types.js';
export { LocalStackError, isLocalStackError, type LocalStackErrorCode } from './errors.js';
export { findBinary, type BinaryName } from './binaries.js';
export { LOCAL_NATS_GO_RUNTIME, startNatsServer } from './nats.js';
export { ensureNkeySeeds, SEED_FILE_SUFFIX } from './nkeys.js';
export {
  HUB_ACCOUNT,
  assertSafeNatsConfig,
  renderNatsAccounts,
  topLevelKeys,
  type NatsUser,
  type NatsUserPermissions,
} from './nats-config.js';
export { startMariaDb } from './mariadb.js';
export { getFreePort, getFreePorts } from './ports.js';

/**
 * Real servers for tests: one nats-server and one MariaDB per test process, shared by its tests,
 * which isolate themselves by a unique subject prefix and a unique database.
 */
export {
  getTestStack,
  startIsolatedMariaDb,
  startIsolatedNats,
  startIsolatedNatsCluster,
  startPartitionableNatsCluster,
} from './stack.js';
export { createClusterNetwork, describeWithNamespaces, networkNamespacesUsable, type ClusterNetwork } from './netns.js';
export type {
  ClusterNode,
  ClusterNodeSpec,
  DbCredentials,
  IsolatedNatsCluster,
  IsolatedMariaDb,
  IsolatedMariaDbOptions,
  IsolatedNats,
  IsolatedNatsOptions,
  TestStack,
} from './stack.js';
export { createTestDatabase, type TestDatabase } from './database.js';
export { uniquePrefix } from './names.js';
export { test } from './fixtures.js';
export { serviceEnv, type ServiceEnvInput } from './env.js';
export { connectTestNats, testNatsCredentialsDir, testNatsUsers, TEST_TOOL } from './nats-auth.js';
export { natsPermissionViolations, recordNatsLog } from './nats-violations.js';
export { until, whenTrue } from './until.js';
export { tapStreamRequests, type StreamRequests } from './stream-requests.js';
export { forgetMessageIds } from './dedup.js';
export { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';

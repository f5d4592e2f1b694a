/**
 * Vitest setup file (see vitest.config.ts): after each test file, no NATS permissions violation
 * by a service may show in a test nats-server's log.
 */
import { afterAll, expect } from 'vitest';
import { natsPermissionViolations } from './nats-violations.js';

afterAll(() => {
  expect(
    natsPermissionViolations(),
    'NATS permissions violations by services (declare the subject in libs/contracts bus.ts or topology.ts)',
  ).toEqual([]);
});

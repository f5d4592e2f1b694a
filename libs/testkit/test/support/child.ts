/**
 * A test process in miniature: starts the shared stack, prints where it lives, then waits for the
 * SIGTERM with which vitest ends its workers.
 */
// The stack module, not the index: the index's `test.extend` only works inside vitest.
import { getTestStack } from '../../src/stack.js';

const stack = await getTestStack();
process.stdout.write(
  `${JSON.stringify({ natsPid: stack.natsServer.pid, mariadbPid: stack.mariadb.pid, storeDir: stack.natsServer.storeDir })}\n`,
);
setInterval(() => {}, 60_000);

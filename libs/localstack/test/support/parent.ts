/**
 * A stand-in for `perry-hub start`: starts the servers on the data directories given as arguments,
 * prints their handles as one JSON line, and waits to be killed. Run with
 * `node --import ./register-ts.mjs parent.ts <natsDir> <mariadbDir|-> <logDir>`.
 */
import { join } from 'node:path';
import { startMariaDb, startNatsServer } from '../../src/index.js';

const [natsDir, mariadbDir, logDir] = process.argv.slice(2);
if (natsDir === undefined || mariadbDir === undefined || logDir === undefined) {
  throw new Error('usage: parent.ts <natsDir> <mariadbDir|-> <logDir>');
}
const [nats, mariadb] = await Promise.all([
  startNatsServer({ dataDir: natsDir, logFile: join(logDir, 'nats.log'), shutdownTimeoutMs: 5_000 }),
  mariadbDir === '-'
    ? undefined
    : startMariaDb({ dataDir: mariadbDir, logFile: join(logDir, 'mariadb.log'), shutdownTimeoutMs: 10_000 }),
]);
process.stdout.write(
  `${JSON.stringify({
    nats: { pid: nats.pid, url: nats.url, port: nats.port },
    mariadb: mariadb && { pid: mariadb.pid, port: mariadb.port },
  })}\n`,
);
setInterval(() => {}, 60_000);

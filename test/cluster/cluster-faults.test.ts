// The hub spread out (see harness.ts) through 300 builds while things die: kill -9 of one NATS
// node and its restart, kill -9 of one instance of each service in turn, and kill -9 of MariaDB
// and its restart. Every acknowledged submission completes exactly once.
import { SERVICE_NAMES } from '@perry-hub/contracts';
import { describe, test } from '@perry-hub/testkit';
import { runClusterBuilds, wait } from './harness.js';

describe('cluster: faults', () => {
  test(
    '300 builds on a three-node cluster, two instances of each service: kill -9 of a NATS node, of each service, of MariaDB',
    { timeout: 900_000 },
    async ({ prefix }) => {
      await runClusterBuilds({
        builds: 300,
        prefix,
        inject: async (run) => {
          const settle = () => wait(3_000);
          await wait(4_000);
          run.note('kill -9 NATS node 2');
          await run.cluster.kill(1);
          await wait(5_000);
          await run.cluster.restart(1);
          run.note('NATS node 2 restarted');
          await settle();
          for (const [k, s] of SERVICE_NAMES.entries()) {
            const victim = run.hub.process(`${s}-${k % 2 === 0 ? 'a' : 'b'}`);
            run.note(`kill -9 ${victim.name}`);
            await victim.crashAndRestart();
            await victim.up();
            await settle();
          }
          run.note('kill -9 MariaDB');
          process.kill(run.mariadb.pid, 'SIGKILL');
          await run.mariadb.exited;
          await wait(3_000);
          run.mariadb = await run.mariadb.restart();
          run.note('MariaDB restarted');
        },
      });
    },
  );
});

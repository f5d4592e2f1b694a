// The hub spread out (see harness.ts) through 300 builds while one NATS node is cut off from the
// other two for 30 s: its route link goes down (packets dropped, as in a network split) while the
// services and workers connected to it keep their connections to it. Every acknowledged
// submission completes exactly once. Needs root and iproute2 (network namespaces); skipped with
// the reason without them.
import { describeWithNamespaces, test } from '@perry-hub/testkit';
import { runClusterBuilds, wait } from './harness.js';

describeWithNamespaces('cluster partition test', 'cluster: partition', () => {
  test(
    '300 builds on a three-node cluster while one node is partitioned from the other two for 30 s',
    { timeout: 900_000 },
    async ({ prefix }) => {
      await runClusterBuilds({
        builds: 300,
        prefix,
        namespaces: true,
        inject: async (run) => {
          await wait(4_000);
          run.note('NATS node 3 cut off from nodes 1 and 2');
          run.cluster.partition(2);
          await wait(30_000);
          run.cluster.heal(2);
          run.note('partition healed after 30 s');
        },
      });
    },
  );
});

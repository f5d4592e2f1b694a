/**
 * A private network for a test cluster, so that a test can partition one nats-server from the
 * others for real (needs root and iproute2). Each node gets its own network namespace with two
 * links:
 *
 * - a client link on a bridge that this host also sits on (`10.213.T.254`), where the hub's
 *   processes, the test's CLIs and the monitoring reach the node at `10.213.T.<i+1>`;
 * - a route link on a second bridge that only the nodes share (`10.214.T.<i+1>`), carrying the
 *   cluster's routes and nothing else.
 *
 * `partition(i)` takes node i's route link down: the node keeps its clients but hears nothing
 * from the other nodes and they nothing from it (packets are dropped, not refused, as in a real
 * network split). `heal(i)` brings it back.
 */
import { execFileSync } from 'node:child_process';
import { describe } from 'vitest';

export interface ClusterNetwork {
  /** The namespace node `i` runs in. */
  namespace(i: number): string;
  /** Where clients reach node `i`. */
  clientHost(i: number): string;
  /** Where the other nodes' routes reach node `i`. */
  routeHost(i: number): string;
  partition(i: number): void;
  heal(i: number): void;
  remove(): void;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** `true`, or why namespaces cannot be used here (not root, no `ip`, no permission). */
export function networkNamespacesUsable(): true | string {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const probe = `phprobe${process.pid % 100_000}`;
  try {
    ip('netns', 'add', probe);
    ip('netns', 'del', probe);
    return true;
  } catch (err) {
    return `cannot create a network namespace: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`;
  }
}

/**
 * `describe` for tests that cut nodes off: skipped where network namespaces cannot be made, with
 * the reason printed (`what` names the tests in that line).
 */
export function describeWithNamespaces(what: string, name: string, body: () => void): void {
  const usable = networkNamespacesUsable();
  if (usable !== true) console.log(`${what} skipped: ${usable}`);
  describe.skipIf(usable !== true)(name, body);
}

/**
 * Creates the namespaces and bridges for `size` nodes; `tag` (1-99999, e.g. a free port) keeps
 * their names and subnets apart from another test's. Removed by `remove()`.
 */
export function createClusterNetwork(size: number, tag: number): ClusterNetwork {
  const t = tag % 100_000;
  const subnet = 1 + (t % 250);
  const ns = (i: number) => `ph${t}n${i}`;
  const clientBridge = `ph${t}c`;
  const routeBridge = `ph${t}r`;
  const clientVeth = (i: number) => `ph${t}c${i}`;
  const routeVeth = (i: number) => `ph${t}r${i}`;
  const clientHost = (i: number) => `10.213.${subnet}.${i + 1}`;
  const routeHost = (i: number) => `10.214.${subnet}.${i + 1}`;

  const remove = () => {
    for (let i = 0; i < size; i++) {
      // Deleting a namespace deletes the link ends inside it, and so their peers here.
      try {
        ip('netns', 'del', ns(i));
      } catch {
        // Not created, or already gone.
      }
    }
    for (const bridge of [clientBridge, routeBridge]) {
      try {
        ip('link', 'del', bridge);
      } catch {
        // Not created, or already gone.
      }
    }
  };

  try {
    ip('link', 'add', clientBridge, 'type', 'bridge');
    ip('addr', 'add', `10.213.${subnet}.254/24`, 'dev', clientBridge);
    ip('link', 'set', clientBridge, 'up');
    ip('link', 'add', routeBridge, 'type', 'bridge');
    ip('link', 'set', routeBridge, 'up');
    for (let i = 0; i < size; i++) {
      ip('netns', 'add', ns(i));
      ip('-n', ns(i), 'link', 'set', 'lo', 'up');
      for (const [veth, bridge, inside, address] of [
        [clientVeth(i), clientBridge, 'client0', clientHost(i)],
        [routeVeth(i), routeBridge, 'route0', routeHost(i)],
      ] as const) {
        ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', inside, 'netns', ns(i));
        ip('link', 'set', veth, 'master', bridge);
        ip('link', 'set', veth, 'up');
        ip('-n', ns(i), 'addr', 'add', `${address}/24`, 'dev', inside);
        ip('-n', ns(i), 'link', 'set', inside, 'up');
      }
    }
  } catch (err) {
    remove();
    throw new Error(`cannot set up the test cluster's network: ${String((err as { stderr?: Buffer }).stderr ?? err)}`, {
      cause: err,
    });
  }

  return {
    namespace: ns,
    clientHost,
    routeHost,
    partition: (i) => ip('link', 'set', routeVeth(i), 'down'),
    heal: (i) => ip('link', 'set', routeVeth(i), 'up'),
    remove,
  };
}

/**
 * The Node flags the hub runs with: in package.json's `start`, infra/systemd, infra/Dockerfile,
 * and wherever the benches and tests start it as a process. A startup flag cannot be set from
 * inside the process, hence a list for whoever launches it.
 *
 * `--no-memory-reducer`: V8's memory reducer shrinks the heap with extra full collections once
 * allocation stops. In an idle hub that was two thirds of its CPU (1.5 to 1.8% of a core, 0.5
 * without it: `npm run bench -- cost`). A server keeps its heap instead; the collections that
 * allocation triggers still free what is garbage.
 */
export const HUB_NODE_FLAGS: readonly string[] = ['--no-memory-reducer'];

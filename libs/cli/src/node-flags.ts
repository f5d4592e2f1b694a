/**
 * The Node flags the hub runs with: in package.json's `start`, infra/systemd, infra/Dockerfile,
 * and wherever the benches and tests start it as a process. A startup flag cannot be set from
 * inside the process, hence a list for whoever launches it.
 *
 * `--no-memory-reducer`: V8's memory reducer shrinks the heap with extra full collections once
 * allocation stops. In an idle hub that was two thirds of its CPU (1.5 to 1.8% of a core, 0.5
 * without it: `npm run bench -- cost`). A server keeps its heap instead; the collections that
 * allocation triggers still free what is garbage.
 *
 * `--heap-growing-percent=200`: the next full collection comes when the old generation has grown
 * to three times what the last one kept. V8's own choice for the hub's small heap (about 40 MB
 * live) was about 1.2 times, and the short-lived Buffers of every transfer set off a full
 * collection every 200 ms of the realistic flow: a third of the hub's CPU was its concurrent
 * marking threads. With the flag, a fifth as many collections and 18% less hub CPU per build.
 */
export const HUB_NODE_FLAGS: readonly string[] = ['--no-memory-reducer', '--heap-growing-percent=200'];

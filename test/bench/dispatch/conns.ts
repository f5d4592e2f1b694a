/**
 * Child process: opens many idle WebSocket connections and keeps them open until it is killed.
 * `node --import test/bench/ts-register.mjs conns.ts <url> <count> <hello|plain>`; prints
 * `open <n>` as they open and `ready <n>` when all are open (workers: after sending their hello).
 * A child of its own, so that 10,000 sockets cost neither the benchmark's file descriptors nor
 * its event loop.
 */
import { WebSocket } from 'ws';
import * as wire from '../../support/rust-wire.js';
import { WORKER_SECRET } from './stack.js';

const [url = '', countText = '0', mode = 'plain'] = process.argv.slice(2);
const count = Number(countText);
const PARALLEL = 200;
const sockets: WebSocket[] = [];
let opened = 0;
let failed = 0;

function openOne(i: number): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    sockets.push(ws);
    ws.on('open', () => {
      if (mode === 'hello') {
        const name = `idle-${process.pid}-${i}`;
        ws.send(wire.hello('linux', { name, secret: WORKER_SECRET, perryVersion: undefined, maxConcurrent: 2 }));
      }
      opened++;
      resolve();
    });
    ws.on('error', () => {
      failed++;
      resolve();
    });
  });
}

let next = 0;
await Promise.all(
  Array.from({ length: PARALLEL }, async () => {
    while (next < count) {
      await openOne(next++);
      if (opened % 1000 === 0) process.stdout.write(`open ${opened}\n`);
    }
  }),
);
process.stdout.write(`ready ${opened} failed ${failed}\n`);
setInterval(() => undefined, 60_000);

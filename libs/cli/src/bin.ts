#!/usr/bin/env node
// Composition root of the perry-hub command: the only place that reads the environment.
import { main } from './main.js';

// `perry-hub jobs | head`: a reader that went away is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

process.exitCode = await main(process.argv.slice(2), process.env);

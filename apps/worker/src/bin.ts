#!/usr/bin/env node
// perry-hub-worker: the reference worker on its own (also `perry-hub worker`).
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2), process.env);

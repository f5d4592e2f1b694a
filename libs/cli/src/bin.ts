#!/usr/bin/env node
// Composition root of the perry-hub command: the only place that reads the environment.
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2), process.env);

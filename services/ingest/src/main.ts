// Composition root: the only place that reads the environment.
import { runServiceMain } from '@perry-hub/runtime';
import { ingest } from './service.js';

await runServiceMain(ingest, process.env);

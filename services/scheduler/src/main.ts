// Composition root: the only place that reads the environment.
import { runServiceMain } from '@perry-hub/runtime';
import { scheduler } from './service.js';

await runServiceMain(scheduler, process.env);

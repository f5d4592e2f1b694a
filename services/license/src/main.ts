// Composition root: the only place that reads the environment.
import { runServiceMain } from '@perry-hub/runtime';
import { license } from './service.js';

await runServiceMain(license, process.env);

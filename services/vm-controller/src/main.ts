// Composition root: the only place that reads the environment.
import { runServiceMain } from '@perry-hub/runtime';
import { vmController } from './service.js';

await runServiceMain(vmController, process.env);

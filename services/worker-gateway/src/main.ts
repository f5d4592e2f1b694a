// Composition root: the only place that reads the environment.
import { runServiceMain } from '@perry-hub/runtime';
import { workerGateway } from './service.js';

await runServiceMain(workerGateway, process.env);

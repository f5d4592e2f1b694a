// Composition root: the only place that reads the environment.
import { runServiceMain } from '@perry-hub/runtime';
import { artifactStore } from './service.js';

await runServiceMain(artifactStore, process.env);

export * from './service.js';
export { vmController as definition } from './service.js';
export { decide, type Decision } from './decide.js';
export * from './memory.js';
export { resolveSettings, type PoolSpec, type Settings, type Timings } from './settings.js';
export type { VmProvider } from './providers/index.js';

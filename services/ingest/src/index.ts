export * from './service.js';
export { ingest as definition } from './service.js';

export * from './service.js';
export { artifactStore as definition } from './service.js';

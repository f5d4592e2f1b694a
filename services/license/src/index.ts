export * from './service.js';
export { license as definition } from './service.js';

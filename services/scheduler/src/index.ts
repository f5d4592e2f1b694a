export * from './service.js';
export { scheduler as definition } from './service.js';

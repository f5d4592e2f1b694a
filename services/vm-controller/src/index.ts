export * from './service.js';
export { vmController as definition } from './service.js';

export * from './service.js';
export { workerGateway as definition } from './service.js';

export * from './services.js';
export * from './subjects.js';
export * from './topology.js';
export * from './errors.js';
export * from './rpc.js';
export * from './messages/health.js';
export * from './messages/status.js';
export * from './messages/signals.js';

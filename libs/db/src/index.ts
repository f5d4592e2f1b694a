export * from './pool.js';
export * from './migrate.js';
export { MIGRATIONS, type Migration } from './migrations/index.js';
export * from './history.js';
export * from './coalesce.js';

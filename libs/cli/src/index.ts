export { main, USAGE } from './main.js';
export { startHub, type Hub, type StartOptions } from './start.js';
export { allVariables, configTable, CliConfig } from './config.js';
export { SERVICES } from './registry.js';

export { HubClientError, sha256Hex, type JobEvent, type JobOutcome, type Submit } from './common.js';
export { ToolClient, toolConnectOptions, type EventsOptions, type ToolClientOptions } from './nats.js';

export { HubClientError, sha256Hex, type JobEvent, type JobOutcome, type Submit } from './common.js';
export { ToolClient, toolConnectOptions, type EventsOptions, type ToolClientOptions } from './nats.js';
export { verifyArtifactWebhook, verifyEventWebhook, type VerifiedArtifact } from './webhooks.js';
export { HttpClient, type HttpClientOptions } from './http.js';
export { downloadToFile, type DownloadOptions, type Downloaded } from './download.js';
export { jobEventStream, type SseEvent, type SseOptions } from './sse.js';

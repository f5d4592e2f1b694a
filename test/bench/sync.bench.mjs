// `npm run bench -- sync`: dispatch and intake figures with nats-server's `sync_interval: always`
// (the all-in-one's setting) beside the default, measured in the same run (see dispatch/sync.ts).
import './ts-register.mjs';

await import('./dispatch/sync.ts');

// `npm run bench -- dispatch`: dispatch latency, log relay latency, idle worker memory, a deep
// queue and artifact transfer, each next to a baseline measured in the same run (see
// dispatch/main.ts). The benchmark is TypeScript, run by plain node through ts-register.mjs
// against the built packages.
import './ts-register.mjs';

await import('./dispatch/main.ts');

// `npm run bench -- cost`: what a build costs the hub in NATS messages, MySQL statements and CPU
// seconds through the realistic flow, and what the idle hub costs (see cost/main.ts). The
// benchmark is TypeScript, run by plain node through ts-register.mjs against the built packages.
import './ts-register.mjs';

await import('./cost/main.ts');

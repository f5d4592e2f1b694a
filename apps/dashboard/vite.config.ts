import { defineConfig } from 'vite';

// Served by the ingest at /ui/ (services/ingest/src/routes/dashboard.ts) under a CSP that allows
// scripts and styles from the hub's origin only: no inline script, no module-preload polyfill.
export default defineConfig({
  base: '/ui/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    target: 'es2022',
  },
});

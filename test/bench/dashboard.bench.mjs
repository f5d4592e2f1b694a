// `npm run bench -- dashboard`: the web dashboard's weight and the overview's first render, on the
// all-in-one (`perry-hub start`, built) with 1,000 jobs in its history, in headless Chromium
// (Debian's chromium through playwright-core, as the browser tests drive it).
// Figures: the gzip size of the built assets (goal: at most 1 MiB; a normal test asserts it), and
// the time from navigating to /ui/ (signed in) until the overview shows its counts, latest jobs
// and queue: a cold load (empty cache) and warm reloads. Baseline, same run: the same five JSON
// requests the overview makes, sent from Node in parallel. Prints figures; never fails on them.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { startAllInOne } from './all-in-one.mjs';

const ROOT = join(import.meta.dirname, '..', '..');
const DIST = join(ROOT, 'apps', 'dashboard', 'dist');
const JOBS = 1_000;
const CLIENTS = 8;
const RELOADS = 5;
const ADMIN_SECRET = randomBytes(24).toString('hex');
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** One small build as `perry publish` sends it; targets vary so the queue has several lines. */
async function submit(url, licenseKey, i) {
  const targets = [['linux'], ['windows'], ['android'], ['macos']][i % 4];
  const form = new FormData();
  form.set(
    'manifest',
    JSON.stringify({ app_name: 'Bench', bundle_id: 'com.example.bench', version: '1', entry: 'src/main.ts', targets }),
  );
  form.set('credentials', '{}');
  form.set('tarball_b64', gzipSync(randomBytes(64)).toString('base64'));
  form.set('license_key', licenseKey);
  const res = await fetch(`${url}/api/v1/build`, { method: 'POST', body: form });
  if (res.status !== 200) throw new Error(`submission ${i}: ${res.status} ${await res.text()}`);
}

function assetSizes() {
  const files = [...readdirSync(join(DIST, 'assets')).map((f) => join(DIST, 'assets', f)), join(DIST, 'index.html')];
  let raw = 0;
  let gzip = 0;
  for (const f of files) {
    const data = readFileSync(f);
    raw += data.length;
    gzip += gzipSync(data, { level: 9 }).length;
  }
  return { files: files.length, raw, gzip };
}

/** Until the overview shows real counts, its latest jobs and its queue. */
async function overviewRendered(page) {
  await page.waitForFunction(
    () => {
      const total = document.querySelector('[data-testid="count-total"]');
      return (
        total !== null &&
        /^\d+$/.test(total.textContent ?? '') &&
        document.querySelector('[data-testid="recent-jobs"]') !== null &&
        document.querySelector('[data-testid="queue"]') !== null
      );
    },
    undefined,
    { polling: 'raf', timeout: 30_000 },
  );
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (n) => `${n.toFixed(0).padStart(6)} ms`;

async function main() {
  const sizes = assetSizes();
  console.log(
    `dashboard assets: ${sizes.files} files, ${(sizes.raw / 1024).toFixed(1)} KiB, ${(sizes.gzip / 1024).toFixed(1)} KiB gzip (goal: at most 1024 KiB gzip)`,
  );
  const dataDir = mkdtempSync(join(tmpdir(), 'perry-hub-bench-'));
  let hub;
  let browser;
  try {
    hub = await startAllInOne(ROOT, dataDir, {
      PERRY_HUB_ADMIN_SECRET: ADMIN_SECRET,
      // No quotas, and each submission a new build (not a retry of an identical one).
      PERRY_HUB_SELF_HOSTED: 'true',
      PERRY_HUB_RESUBMIT_WINDOW_SECS: '0',
    });
    const register = await fetch(`${hub.url}/api/v1/license/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    const { license_key: licenseKey } = await register.json();
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (next < JOBS) await submit(hub.url, licenseKey, next++);
      }),
    );
    console.log(
      `history: ${JOBS} jobs submitted in ${((performance.now() - t0) / 1000).toFixed(1)} s (no worker: all queued)`,
    );

    // Baseline: the overview's five requests, from Node.
    const auth = { authorization: `Bearer ${ADMIN_SECRET}` };
    const since = new Date(new Date().setHours(0, 0, 0, 0)).toISOString();
    const paths = [
      '/api/v1/jobs/counts?since=' + encodeURIComponent(since),
      '/api/v1/jobs?limit=10',
      '/api/v1/queue',
      '/api/v1/workers',
      '/api/v1/vms',
    ];
    const apiTimes = [];
    for (let i = 0; i < RELOADS + 1; i++) {
      const a = performance.now();
      await Promise.all(paths.map(async (p) => (await fetch(`${hub.url}${p}`, { headers: auth })).arrayBuffer()));
      apiTimes.push(performance.now() - a);
    }

    browser = await chromium.launch({
      executablePath: process.env.PERRY_HUB_CHROMIUM_BIN ?? '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_ARGS,
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await page.goto(`${hub.url}/ui/`);
    await page.getByLabel('Admin secret, API token or license key').fill(ADMIN_SECRET);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('who').waitFor();

    // Cold: a new page in a new context holding only the session cookie (empty HTTP cache).
    const cookies = await context.cookies();
    const cold = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await cold.addCookies(cookies);
    const coldPage = await cold.newPage();
    const c0 = performance.now();
    await coldPage.goto(`${hub.url}/ui/`);
    await overviewRendered(coldPage);
    const coldMs = performance.now() - c0;
    await cold.close();

    const warm = [];
    for (let i = 0; i < RELOADS; i++) {
      const w0 = performance.now();
      await page.goto(`${hub.url}/ui/?r=${i}#/`);
      await overviewRendered(page);
      warm.push(performance.now() - w0);
    }
    console.log(`overview first render with ${JOBS} jobs in the history (goal: under 1000 ms):`);
    console.log(`  cold load                 ${ms(coldMs)}`);
    console.log(
      `  warm reload (median of ${RELOADS}) ${ms(median(warm))}   (min ${warm.map((x) => x.toFixed(0)).sort((a, b) => a - b)[0]} ms)`,
    );
    console.log(`  baseline: its 5 JSON requests from Node (median) ${ms(median(apiTimes))}`);
    console.log(
      `machine: ${cpus().length} cores, load ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
  } finally {
    await browser?.close();
    if (hub) {
      hub.child.kill('SIGTERM');
      await new Promise((r) => (hub.child.exitCode !== null ? r() : hub.child.once('exit', r)));
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();

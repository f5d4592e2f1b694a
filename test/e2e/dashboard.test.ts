// The web dashboard in headless Chromium against the all-in-one hub with simulated Rust workers:
// sign-in, the overview following a job from queued to completed without a reload, a job page
// showing its log as the build runs, cancelling from the page, a license that cannot see another
// license's job, a wrong secret refused and counted, the session cookie's properties and the
// cross-site refusals. Screenshots at desktop and phone widths (docs/ with UPDATE_SCREENSHOTS=1).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { test } from '@perry-hub/testkit';
import { ADMIN_SECRET, CREDENTIALS, MANIFEST } from '../support/test-hub.js';
import {
  DESKTOP,
  PHONE,
  accessibilityViolations,
  collectProblems,
  launchChromium,
  newUser,
  screenshotDir,
  signIn,
} from '../support/browser.js';
import { until, withHub } from './dispatch-kit.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DIST = join(ROOT, 'apps', 'dashboard', 'dist');
const SESSION_COOKIE = 'perry_hub_session';

let browser: Browser;
beforeAll(async () => {
  if (!existsSync(join(DIST, 'index.html'))) {
    throw new Error('apps/dashboard/dist is missing: build the dashboard first (npm run build; npm test does)');
  }
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

/** A build submitted over HTTP as `perry publish` sends it (no watcher): its job id. */
async function submitBuild(origin: string, licenseKey: string, i: number): Promise<string> {
  const form = new FormData();
  form.set('manifest', JSON.stringify({ ...MANIFEST, targets: ['visionos'], version: `page-${i}` }));
  form.set('credentials', JSON.stringify(CREDENTIALS));
  form.set('tarball_b64', gzipSync(Buffer.from(`paging ${i} ${Math.random()}`)).toString('base64'));
  form.set('license_key', licenseKey);
  const res = await fetch(`${origin}/api/v1/build`, { method: 'POST', body: form });
  const body = (await res.json()) as { job_id?: string };
  if (res.status !== 200 || !body.job_id) throw new Error(`build refused: ${res.status} ${JSON.stringify(body)}`);
  return body.job_id;
}

/** The text of the job's row on the overview's "Latest jobs" table, or undefined while absent. */
async function rowText(page: Page, jobId: string): Promise<string | undefined> {
  const row = page.locator(`[data-testid="recent-jobs"] tr[data-job="${jobId}"]`);
  return (await row.count()) === 0 ? undefined : await row.innerText();
}

describe('dashboard', () => {
  test('the built dashboard adds at most 1 MiB of gzip-compressed assets', () => {
    const files = readdirSync(join(DIST, 'assets')).map((f) => join(DIST, 'assets', f));
    files.push(join(DIST, 'index.html'));
    const gzip = files.reduce((sum, f) => sum + gzipSync(readFileSync(f), { level: 9 }).length, 0);
    const raw = files.reduce((sum, f) => sum + statSync(f).size, 0);
    console.log(`dashboard assets: ${files.length} files, ${raw} bytes, ${gzip} bytes gzip`);
    expect(gzip).toBeGreaterThan(1000);
    expect(gzip).toBeLessThanOrEqual(1024 * 1024);
  });

  test(
    'admin: live overview, live job log, cancel from the job page, no console errors',
    { timeout: 240_000 },
    async ({ natsUrl, prefix, database }) => {
      // Self-hosted: no free-tier quota stops the builds the pagination check submits.
      await withHub({ natsUrl, prefix, database }, { PERRY_HUB_SELF_HOSTED: 'true' }, async (s) => {
        const origin = s.hub.url;
        const licenseKey = await s.hub.registerLicense();
        const { context, page } = await newUser(browser, DESKTOP);
        const problems = collectProblems(page);
        let navigations = 0;
        page.on('framenavigated', (f) => {
          if (f === page.mainFrame()) navigations += 1;
        });
        try {
          await page.goto(`${origin}/ui/`);
          await page.getByLabel('Admin secret, API token or license key').waitFor();
          const a11y: Record<string, string[]> = { 'sign-in': await accessibilityViolations(page) };
          // Signing in by keyboard alone: the field has the focus, Enter submits.
          expect(await page.evaluate<string>('document.activeElement.id')).toBe('secret');
          await page.keyboard.type(ADMIN_SECRET);
          await page.keyboard.press('Enter');
          await page.getByTestId('who').waitFor();
          expect(await page.getByTestId('who').innerText()).toContain('admin');

          // The session: an httpOnly, SameSite=Strict, expiring cookie; nothing for scripts to read.
          const cookies = await context.cookies(origin);
          const session = cookies.find((c) => c.name === SESSION_COOKIE);
          expect(session).toBeDefined();
          expect(session!.httpOnly).toBe(true);
          expect(session!.sameSite).toBe('Strict');
          expect(session!.secure).toBe(false); // plain HTTP here; Secure over TLS (unit test)
          expect(session!.expires).toBeGreaterThan(Date.now() / 1000 + 60);
          expect(session!.value).not.toContain(ADMIN_SECRET);
          expect(await page.evaluate<string>('document.cookie')).toBe('');
          expect(await page.evaluate<number>('localStorage.length + sessionStorage.length')).toBe(0);
          expect(await page.content()).not.toContain(ADMIN_SECRET);

          // A job with no worker to run it: queued on the overview, and in the queue with why.
          const first = s.publish(['linux'], { licenseKey });
          const firstId = await first.jobId;
          await until('the queued job on the overview', async () => (await rowText(page, firstId))?.includes('queued'));
          await until('the linux queue line', async () => {
            const queue = page.getByTestId('queue');
            return (await queue.count()) > 0 && (await queue.innerText()).includes('linux');
          });
          const navigationsBefore = navigations;

          // A worker connects: the same page shows the job assigned, then finished.
          await s.worker('linux', { name: 'linux-ui', script: () => ({ durationMs: 4_000, logLines: 6 }) });
          await until('the job running on linux-ui', async () => {
            const text = await rowText(page, firstId);
            return text?.includes('running') && text.includes('linux-ui');
          });
          await until('linux-ui listed with its job', async () =>
            (await page.locator('[data-testid="workers"] tr[data-worker="linux-ui"]').innerText()).includes(
              firstId.slice(0, 8),
            ),
          );
          await until(
            'the job completed on the overview',
            async () => (await rowText(page, firstId))?.includes('completed'),
            30_000,
          );
          await until(
            'the completed count',
            async () => (await page.getByTestId('count-completed').innerText()) === '1',
          );
          expect((await first.result).exitCode).toBe(0);
          expect(navigations).toBe(navigationsBefore);
          const shots = screenshotDir(ROOT);
          a11y['overview'] = await accessibilityViolations(page);

          // A job page opened while the build runs: its log arrives live, in order.
          const second = s.publish(['linux'], { licenseKey });
          const secondId = await second.jobId;
          await page.goto(`${origin}/ui/#/jobs/${secondId}`);
          const log = page.getByTestId('log');
          await until('the compiling stage while the job runs', async () =>
            (await log.innerText()).includes('compiling'),
          );
          const whileRunning = await page.getByTestId('job-state').innerText();
          const logWhileRunning = await log.innerText();
          await until(
            'the build to finish on the page',
            async () => (await log.innerText()).includes('Build succeeded'),
            30_000,
          );
          await until('the completed state', async () =>
            (await page.getByTestId('job-state').innerText()).includes('completed'),
          );
          const text = await log.innerText();
          const lines = text.split('\n');
          console.log(
            `job page: state while the log arrived: ${whileRunning.trim()}; ${lines.length} log lines at the end`,
          );
          expect(whileRunning).toMatch(/queued|running/);
          expect(logWhileRunning).not.toContain('Build succeeded');
          expect(logWhileRunning).not.toContain('packaging');
          // Stage headers in the order the worker sent them, its lines in order, the end last.
          const order = [
            'extracting',
            'compiling',
            'line 0 ',
            'line 1 ',
            'line 5 ',
            'packaging',
            'uploading',
            'Build succeeded',
          ];
          const at = order.map((needle) => lines.findIndex((l) => l.includes(needle)));
          expect(at.every((i) => i >= 0)).toBe(true);
          expect([...at].sort((a, b) => a - b)).toEqual(at);
          expect(lines.filter((l) => l.includes(`of ${secondId}`))).toHaveLength(6);
          await page.screenshot({ path: join(shots, 'dashboard-job.png'), fullPage: true });
          a11y['job'] = await accessibilityViolations(page);

          // A finished job's page replays its log.
          await page.goto(`${origin}/ui/#/jobs/${firstId}`);
          await until('the replayed log', async () =>
            (await page.getByTestId('log').innerText()).includes('Build succeeded'),
          );
          await until(
            'the log said to be replayed',
            async () => (await page.getByText('The whole log, replayed.').count()) === 1,
          );

          // Cancel a queued job (no windows worker) from its page, after confirming.
          const third = s.publish(['windows'], { licenseKey });
          const thirdId = await third.jobId;
          await page.goto(`${origin}/ui/#/jobs/${thirdId}`);
          await until('the queued state', async () =>
            (await page.getByTestId('job-state').innerText()).includes('queued'),
          );
          // By keyboard: Enter opens the confirmation with "Keep it" focused, Escape closes it;
          // opened again, Shift+Tab reaches "Yes, cancel the job" and Enter confirms.
          const cancelButton = page.getByRole('button', { name: 'Cancel job…' });
          const dialog = page.getByRole('dialog', { name: 'Cancel this job?' });
          await cancelButton.focus();
          await page.keyboard.press('Enter');
          await dialog.waitFor();
          a11y['cancel dialog'] = await accessibilityViolations(page);
          expect(await page.evaluate<string>('document.activeElement.textContent')).toBe('Keep it');
          await page.keyboard.press('Escape');
          await dialog.waitFor({ state: 'hidden' });
          expect((await s.status(thirdId)).status).toBe('queued');
          await cancelButton.focus();
          await page.keyboard.press('Enter');
          await dialog.waitFor();
          await page.keyboard.press('Shift+Tab');
          expect(await page.evaluate<string>('document.activeElement.textContent')).toBe('Yes, cancel the job');
          await page.keyboard.press('Enter');
          await until('the cancelled state', async () =>
            (await page.getByTestId('job-state').innerText()).includes('cancelled'),
          );
          expect((await s.status(thirdId)).status).toBe('cancelled');
          expect((await third.result).exitCode).not.toBe(0);

          // The jobs list filters by state.
          await page.goto(`${origin}/ui/#/jobs?state=cancelled`);
          await until('the filtered list', async () => (await page.getByTestId('jobs').count()) > 0);
          const listed = await page
            .locator('[data-testid="jobs"] tbody tr')
            .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-job')));
          expect(listed).toEqual([thirdId]);
          a11y['jobs'] = await accessibilityViolations(page);

          // Workers page: what each worker runs; a worker that goes away leaves its job re-queued.
          const mac = await s.worker('macos', { name: 'mac-ui', script: () => ({ hang: true }) });
          const fourth = s.publish(['macos'], { licenseKey });
          const fourthId = await fourth.jobId;
          await page.goto(`${origin}/ui/#/workers`);
          await until('mac-ui running the job', async () => {
            const row = page.locator('[data-testid="workers"] tr[data-worker="mac-ui"]');
            return (await row.count()) > 0 && (await row.innerText()).includes(fourthId.slice(0, 8));
          });
          a11y['workers'] = await accessibilityViolations(page);
          await mac.stop();
          await until('the job shown as re-queued', async () => {
            const table = page.getByTestId('requeued');
            return (await table.count()) > 0 && (await table.innerText()).includes(fourthId.slice(0, 8));
          });
          await until(
            'mac-ui gone from the workers',
            async () => (await page.locator('[data-testid="workers"] tr[data-worker="mac-ui"]').count()) === 0,
          );
          expect(await page.getByTestId('requeued').innerText()).toContain('mac-ui');

          // Paging: 25 jobs a page, newest first; the admin filters by license.
          const submitted = [];
          for (let i = 0; i < 24; i++) submitted.push(await submitBuild(origin, licenseKey, i));
          await page.goto(`${origin}/ui/#/jobs`);
          const pageIds = async () =>
            page
              .locator('[data-testid="jobs"] tbody tr')
              .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-job') ?? ''));
          await until('a full first page', async () => (await pageIds()).length === 25);
          const firstPage = await pageIds();
          expect(firstPage.slice(0, 24)).toEqual([...submitted].reverse());
          await page.getByRole('button', { name: 'Older →' }).click();
          // Between pages the table may be briefly empty while the older page loads.
          await until('the second page', async () => {
            const ids = await pageIds();
            return ids.length > 0 && !ids.includes(firstPage[0]!);
          });
          const secondPage = await pageIds();
          expect(secondPage.length).toBe(3); // 4 builds before the 24: 28 in all
          expect(new Set([...firstPage, ...secondPage]).size).toBe(28);
          expect(await page.getByRole('button', { name: 'Older →' }).isDisabled()).toBe(true);
          await page.getByRole('button', { name: '← Newer' }).click();
          await until('back on the first page', async () => (await pageIds())[0] === firstPage[0]);
          const other = await s.hub.registerLicense();
          const otherJob = await submitBuild(origin, other, 99);
          await page.getByLabel('License key').fill(other);
          await page.getByRole('button', { name: 'Apply' }).click();
          await until('the license filter', async () => (await pageIds()).join() === otherJob);

          // The overview with something waiting (the re-queued job: no macos worker left).
          await page.goto(`${origin}/ui/#/`);
          await until('the macos queue line', async () => {
            const queue = page.getByTestId('queue');
            return (await queue.count()) > 0 && (await queue.innerText()).includes('macos');
          });
          await page.screenshot({ path: join(shots, 'dashboard-overview.png'), fullPage: true });

          // Phone width: the same pages, readable.
          await page.setViewportSize(PHONE);
          await until('the overview at phone width', async () => (await page.getByTestId('recent-jobs').count()) > 0);
          await page.screenshot({ path: join(shots, 'dashboard-overview-phone.png'), fullPage: true });
          a11y['overview (phone)'] = await accessibilityViolations(page);
          await page.goto(`${origin}/ui/#/jobs/${secondId}`);
          await until('the job at phone width', async () =>
            (await page.getByTestId('log').innerText()).includes('Build succeeded'),
          );
          await page.screenshot({ path: join(shots, 'dashboard-job-phone.png'), fullPage: true });
          const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
          expect(overflow).toBeLessThanOrEqual(0);
          console.log(`screenshots in ${shots}`);

          // WCAG 2.1 A and AA as axe-core checks them: contrast, labels, names, landmarks.
          console.log(`accessibility: ${Object.keys(a11y).length} views checked`);
          expect(a11y).toEqual(Object.fromEntries(Object.keys(a11y).map((k) => [k, []])));
          expect(problems).toEqual([]);
        } finally {
          await context.close();
        }
      });
    },
  );

  test(
    'a license sees only its jobs; cross-site requests and wrong secrets are refused, and counted',
    { timeout: 180_000 },
    async ({ natsUrl, prefix, database }) => {
      await withHub({ natsUrl, prefix, database }, { PERRY_HUB_AUTH_FAILURES_MAX: '8' }, async (s) => {
        const origin = s.hub.url;
        const mine = await s.hub.registerLicense();
        const theirs = await s.hub.registerLicense();
        const myJob = await s.publish(['windows'], { licenseKey: mine }).jobId;
        const theirJob = await s.publish(['windows'], { licenseKey: theirs }).jobId;

        // The pages' responses carry a strict CSP; the page loads no inline script.
        const res = await fetch(`${origin}/ui/`);
        expect(res.status).toBe(200);
        const csp = res.headers.get('content-security-policy') ?? '';
        expect(csp).toContain("script-src 'self'");
        expect(csp).toContain("default-src 'none'");
        expect(csp).not.toContain('unsafe-inline');
        expect(res.headers.get('x-content-type-options')).toBe('nosniff');
        expect(await res.text()).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);

        const { context, page } = await newUser(browser, DESKTOP);
        const problems = collectProblems(page);
        try {
          await signIn(page, origin, mine);
          expect(await page.getByTestId('who').innerText()).toContain('license');
          // No operations pages for a license; its overview counts its own jobs only.
          expect(await page.getByRole('link', { name: 'Workers' }).count()).toBe(0);
          await until('the own job on the overview', async () => (await rowText(page, myJob)) !== undefined);
          expect(await rowText(page, theirJob)).toBeUndefined();
          await until('own count', async () => (await page.getByTestId('count-total').innerText()) === '1');
          await page.goto(`${origin}/ui/#/jobs`);
          await until('the list', async () => (await page.getByTestId('jobs').count()) > 0);
          const listed = await page
            .locator('[data-testid="jobs"] tbody tr')
            .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-job')));
          expect(listed).toEqual([myJob]);
          await page.goto(`${origin}/ui/#/jobs/${theirJob}`);
          await until('not found', async () => (await page.getByRole('alert').count()) > 0);
          expect(await page.getByRole('alert').innerText()).toContain('Job not found');
          expect(problems.filter((p) => !p.includes('404'))).toEqual([]);

          // The cookie works for the dashboard's own requests only.
          const cookie = (await context.cookies(origin)).find((c) => c.name === SESSION_COOKIE)!.value;
          const withCookie = (extra: Record<string, string> = {}) => ({
            cookie: `${SESSION_COOKIE}=${cookie}`,
            ...extra,
          });
          expect((await fetch(`${origin}/api/v1/jobs`, { headers: withCookie() })).status).toBe(200);
          // An Authorization header wins: a wrong one is not rescued by the cookie.
          expect(
            (await fetch(`${origin}/api/v1/jobs`, { headers: withCookie({ authorization: 'Bearer nope' }) })).status,
          ).toBe(401);
          // A forged or altered cookie is no session.
          const forged = `${cookie.slice(0, -4)}AAAA`;
          expect(
            (await fetch(`${origin}/api/v1/jobs`, { headers: { cookie: `${SESSION_COOKIE}=${forged}` } })).status,
          ).toBe(401);
          // State changes with the cookie must come from the hub's own pages.
          const cancel = (headers: Record<string, string>) =>
            fetch(`${origin}/api/v1/jobs/${myJob}/cancel`, {
              method: 'POST',
              headers: withCookie({ 'content-type': 'application/json', ...headers }),
              body: '{}',
            });
          expect((await cancel({ origin: 'http://attacker.example', 'sec-fetch-site': 'cross-site' })).status).toBe(
            403,
          );
          expect((await cancel({ origin: 'http://attacker.example' })).status).toBe(403);
          expect((await cancel({})).status).toBe(403);
          expect((await s.status(myJob)).status).toBe('queued');
          expect((await cancel({ origin, 'sec-fetch-site': 'same-origin' })).status).toBe(200);
          expect((await s.status(myJob)).status).toBe('cancelled');
          // Another license's job cannot be cancelled with this session either.
          const other = await fetch(`${origin}/api/v1/jobs/${theirJob}/cancel`, {
            method: 'POST',
            headers: withCookie({ 'content-type': 'application/json', origin }),
            body: '{}',
          });
          expect(other.status).toBe(404);
          expect((await s.status(theirJob)).status).toBe('queued');
          // A sign-in from another site is refused before the secret is looked at.
          const crossSignIn = await fetch(`${origin}/ui/session`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', origin: 'http://attacker.example' },
            body: JSON.stringify({ secret: ADMIN_SECRET }),
          });
          expect(crossSignIn.status).toBe(403);
          expect(crossSignIn.headers.get('set-cookie')).toBeNull();
        } finally {
          await context.close();
        }

        // A wrong secret: refused on the page, and counted by the failed-authentication limit.
        const stranger = await newUser(browser, DESKTOP);
        try {
          await stranger.page.goto(`${origin}/ui/`);
          await stranger.page.getByLabel('Admin secret, API token or license key').fill('not-the-secret');
          await stranger.page.getByRole('button', { name: 'Sign in' }).click();
          const refusal = stranger.page.getByTestId('signin-error');
          await refusal.waitFor();
          expect(await refusal.innerText()).toContain('Sign-in refused');
          expect(await stranger.context.cookies(origin)).toEqual([]);
          // Until the limit (8 here; the other license's job and the wrong Bearer above spent some) is hit.
          let blockedAfter = 0;
          for (let i = 1; i <= 8 && blockedAfter === 0; i++) {
            const r = await fetch(`${origin}/ui/session`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', origin },
              body: JSON.stringify({ secret: `wrong-${i}` }),
            });
            if (r.status === 429) blockedAfter = i;
            else expect(r.status).toBe(401);
          }
          console.log(`sign-in blocked after ${blockedAfter} more wrong secrets`);
          expect(blockedAfter).toBeGreaterThan(0);
          // Now even the right secret is refused from this address, until the window passes.
          await stranger.page.getByLabel('Admin secret, API token or license key').fill(ADMIN_SECRET);
          await stranger.page.getByRole('button', { name: 'Sign in' }).click();
          await until('the limit message', async () =>
            (await refusal.innerText()).includes('Too many failed sign-ins'),
          );
        } finally {
          await stranger.context.close();
        }
      });
    },
  );
});

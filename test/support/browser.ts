/**
 * Headless Chromium for the dashboard's tests and bench: Debian's `chromium` package (installed by
 * `npm test` / `npm run bench`), driven by playwright-core, which downloads no browser of its own.
 * Each launch gets a new temporary profile (playwright makes a fresh --user-data-dir per launch and
 * removes it on close); each context is a separate cookie jar (one signed-in user).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env['PERRY_HUB_CHROMIUM_BIN'] ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const DESKTOP = { width: 1280, height: 800 } as const;
export const PHONE = { width: 390, height: 844 } as const;

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (npm test does, as root)`);
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
}

/** Everything a page reported as wrong: console errors and uncaught exceptions. */
export function collectProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  return problems;
}

export async function newUser(browser: Browser, viewport = DESKTOP): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  return { context, page };
}

/** Signs in on the dashboard's form and waits for the navigation bar. */
export async function signIn(page: Page, origin: string, secret: string): Promise<void> {
  await page.goto(`${origin}/ui/`);
  await page.getByLabel('Admin secret, API token or license key').fill(secret);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('who').waitFor();
}

/**
 * Where screenshots go: docs/ of the repository when UPDATE_SCREENSHOTS=1 (a deliberate run whose
 * pictures are committed), otherwise a temporary directory, so a normal run leaves the tree clean.
 */
export function screenshotDir(repoRoot: string): string {
  if (process.env['UPDATE_SCREENSHOTS'] === '1') {
    const dir = join(repoRoot, 'docs');
    mkdirSync(dir, { recursive: true });
    return dir;
  }
  return mkdtempSync(join(tmpdir(), 'perry-hub-screenshots-'));
}

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * WCAG 2 A and AA violations axe-core finds on the page as it is now (contrast, labels, roles,
 * landmarks, ...). axe is evaluated through the DevTools protocol, which the page's CSP does not
 * govern: the dashboard itself still loads no script but its own.
 */
export async function accessibilityViolations(page: Page): Promise<string[]> {
  if (!(await page.evaluate<boolean>('typeof window.axe === "object"'))) await page.evaluate(AXE);
  return page.evaluate<string[]>(
    `axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
       .then((r) => r.violations.map((v) => v.id + ' (' + v.impact + '): ' + v.help + ' at ' +
         v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')))`,
  );
}

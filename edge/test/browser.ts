import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ROOT } from '../../scripts/lib/processes.ts';

/**
 * The web client's browser tests' common ground: Debian's Chromium through playwright-core
 * (never a downloaded browser), signing in, and the composer.
 */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Screenshots of the browser tests. */
export const SHOTS = path.join(ROOT, '.artifacts', 'web');
/** Generous: a loaded 2-core machine runs workerd, the region and two browsers at once. */
export const WAIT = 60_000;

/** Skipped without a browser, except in CI (.ci/run installs it), where its absence is a failure. */
export const browserSkip: string | false = fs.existsSync(CHROMIUM) || process.env.CI === 'true' ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium)`;

/** Chromium headless, as the brief's flags say; screenshots' folder made. */
export async function launchBrowser(): Promise<Browser> {
  fs.mkdirSync(SHOTS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
}

/** A new browser context signed in as `user` on the web client at `edgeUrl`, online. `onPageError` hears uncaught page errors. */
export async function signIn(
  browser: Browser,
  edgeUrl: string,
  user: string,
  opts: { viewport?: { width: number; height: number }; onPageError?: (message: string) => void } = {},
): Promise<{ ctx: BrowserContext; page: Page }> {
  const ctx = await browser.newContext({ viewport: opts.viewport ?? { width: 1000, height: 700 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(WAIT);
  if (opts.onPageError) page.on('pageerror', (err) => opts.onPageError!(err.message));
  await page.goto(edgeUrl + '/');
  await page.getByLabel('Your name').fill(user);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#me', { hasText: user }).waitFor();
  await page.locator('#banner[data-status="online"]').waitFor({ state: 'attached' });
  return { ctx, page };
}

/** Types `text` into the composer and sends it. */
export async function sendText(page: Page, text: string): Promise<void> {
  await page.getByLabel('Message', { exact: true }).fill(text);
  await page.keyboard.press('Enter');
}

import { test, expect, Page } from '@playwright/test';
import { noJs, open } from './helpers';
import budgets from '../budgets.json';

/** What the browser fetched from the network (not from its cache) under /pkg/, by path. */
async function recordDownloads(page: Page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const fromCache = new Set<string>();
  const downloads: { path: string; cacheControl: string; requestId: string }[] = [];
  cdp.on('Network.requestServedFromCache', (event) => fromCache.add(event.requestId));
  cdp.on('Network.responseReceived', (event) => {
    const path = new URL(event.response.url).pathname;
    if (!path.startsWith('/pkg/')) return;
    if (event.response.fromDiskCache || event.response.fromPrefetchCache || event.response.fromServiceWorker) return;
    const headers = Object.fromEntries(
      Object.entries(event.response.headers).map(([name, value]) => [name.toLowerCase(), String(value)]),
    );
    downloads.push({ path, cacheControl: headers['cache-control'] ?? '', requestId: event.requestId });
  });
  // A response served from the memory cache may still be reported; leave those out.
  return () => downloads.filter((d) => !fromCache.has(d.requestId));
}

test('the wasm, JS and CSS have content-hashed names, are cached for good, and a repeat visit downloads none again', async ({
  page,
}, testInfo) => {
  const downloads = await recordDownloads(page);
  await open(page, '/', testInfo);
  await expect(page.getByRole('heading', { name: 'Catalog' })).toBeVisible();
  // Every download of the first visit finished: one still under way when the next page loads
  // is not in the cache yet, and is fetched again.
  await page.waitForLoadState('networkidle');
  const first = downloads();
  const kinds = noJs(testInfo) ? ['css'] : ['css', 'js', 'wasm'];
  if (noJs(testInfo)) {
    // Without JavaScript the browser build is never used: not even preloaded.
    expect(first.map((d) => d.path).filter((p) => /\.(js|wasm)$/.test(p))).toEqual([]);
  }
  for (const kind of kinds) {
    const file = first.find((d) => new RegExp(`^/pkg/coatcheck\\.[A-Za-z0-9_-]+\\.${kind}$`).test(d.path));
    expect(file, `a hashed .${kind} in ${JSON.stringify(first.map((d) => d.path))}`).toBeTruthy();
    expect(file!.cacheControl).toBe('public, max-age=31536000, immutable');
  }

  // Another page, loaded in full (not a client-side navigation): everything from the cache.
  const before = downloads().length;
  await open(page, '/cart', testInfo);
  await expect(page.getByRole('heading', { name: 'Your cart' })).toBeVisible();
  const again = downloads().slice(before);
  expect(again.map((d) => d.path), 'assets downloaded again on the repeat visit').toEqual([]);
  console.log(
    `[${testInfo.project.name}] /pkg/ downloads: ${first.length} on the first visit (${first.map((d) => d.path.replace(/^\/pkg\//, '')).join(', ')}), ${again.length} on the next page`,
  );
  // Still styled, and (with JavaScript) hydrated from the cached wasm: `open` waited for it.
  const headerColor = await page.locator('header').evaluate((el) => getComputedStyle(el).backgroundColor);
  expect(headerColor).not.toBe('rgba(0, 0, 0, 0)');
  // Pages themselves are never stored.
  const response = await page.request.get('/');
  expect(response.headers()['cache-control']).toBe('no-store');
});

test('the wasm a first visit to any page downloads stays within its budget (none without JavaScript)', async ({
  browser,
}, testInfo) => {
  const pages = ['/', '/products/harbour-wool-coat', '/cart', '/login'];
  const budget = budgets.wasmFirstVisitKB * 1024;
  const figures: string[] = [];
  for (const path of pages) {
    // A first visit: a fresh context has an empty cache.
    const context = await browser.newContext({ javaScriptEnabled: !noJs(testInfo) });
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    const wasm = new Set<string>();
    let bytes = 0;
    cdp.on('Network.responseReceived', (event) => {
      if (new URL(event.response.url).pathname.endsWith('.wasm')) wasm.add(event.requestId);
    });
    cdp.on('Network.loadingFinished', (event) => {
      if (wasm.has(event.requestId)) bytes += event.encodedDataLength;
    });
    await open(page, path, testInfo);
    await page.waitForLoadState('networkidle');
    figures.push(`${path} ${Math.round(bytes / 1024)} KB`);
    if (noJs(testInfo)) {
      expect(bytes, `wasm downloaded for ${path} without JavaScript`).toBe(0);
    } else {
      expect(bytes, `wasm downloaded for ${path}`).toBeGreaterThan(0);
      expect(bytes, `wasm downloaded for ${path}, budget ${budgets.wasmFirstVisitKB} KB`).toBeLessThanOrEqual(budget);
    }
    await context.close();
  }
  console.log(`[${testInfo.project.name}] wasm on a first visit (budget ${budgets.wasmFirstVisitKB} KB): ${figures.join(', ')}`);
});

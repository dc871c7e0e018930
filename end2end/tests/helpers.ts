import { Browser, BrowserContext, expect, Page, TestInfo } from '@playwright/test';
import { ADMIN_EMAIL, ADMIN_PASSWORD } from '../playwright.config';

/** True in the projects that run with JavaScript disabled. */
export const noJs = (testInfo: TestInfo) => testInfo.project.use.javaScriptEnabled === false;

export const PASSWORD = 'correct horse battery staple';

/** A unique email per test run, so tests never collide on the shared database. */
export function uniqueEmail(prefix: string, testInfo: TestInfo): string {
  const stamp = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 7)}`;
  return `${prefix}-${testInfo.project.name}-${stamp}@example.com`;
}

/** What a page said and failed to load, kept per page so a failure can say what went wrong. */
const pageEvents = new WeakMap<Page, string[]>();

/** Starts recording a page's console messages, failed requests and error answers. */
export function watch(page: Page) {
  if (pageEvents.has(page)) return;
  const events: string[] = [];
  pageEvents.set(page, events);
  const at = () => new Date().toISOString().slice(11, 23);
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') events.push(`${at()} console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => events.push(`${at()} page error: ${e.message}`));
  page.on('requestfailed', (r) => events.push(`${at()} request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 500) events.push(`${at()} ${r.status()} ${r.request().method()} ${r.url()}`);
  });
}

/** Waits until the wasm has hydrated the page; if it does not, says what the page saw. */
export async function waitForHydration(page: Page) {
  try {
    await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1, { timeout: 20_000 });
  } catch (error) {
    const events = pageEvents.get(page) ?? ['(page not watched)'];
    throw new Error(`${page.url()} did not hydrate. What the page saw:\n${events.join('\n')}\n${error}`);
  }
}

/** Opens a page and, with JavaScript on, waits until it is interactive. */
export async function open(page: Page, path: string, testInfo: TestInfo) {
  watch(page);
  const response = await page.goto(path);
  // A server error page has no app to hydrate: say so, rather than wait for hydration.
  expect(response?.status() ?? 0, `GET ${path}`).toBeLessThan(500);
  if (!noJs(testInfo)) await waitForHydration(page);
  return response;
}

/** The value of the session cookie (`id` on plain http). */
export async function sessionCookie(context: BrowserContext): Promise<string | undefined> {
  const cookies = await context.cookies();
  return cookies.find((c) => c.name === 'id' || c.name === '__Host-id')?.value;
}

export async function expectCartCount(page: Page, count: number) {
  await expect(page.getByTestId('cart-count')).toHaveText(String(count));
}

/** Adds `quantity` of the product `slug` from its page. */
export async function addFromProductPage(page: Page, slug: string, quantity: number, testInfo: TestInfo) {
  await open(page, `/products/${slug}`, testInfo);
  await page.getByLabel('Quantity', { exact: true }).fill(String(quantity));
  await page.getByTestId('add-to-cart').getByRole('button', { name: 'Add to cart' }).click();
  await expect(page.getByTestId('flash')).toContainText('to your cart');
}

export async function register(page: Page, email: string, testInfo: TestInfo, next?: string) {
  await open(page, next ? `/register?next=${encodeURIComponent(next)}` : '/register', testInfo);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByTestId('current-user')).toContainText(email);
}

export async function login(page: Page, email: string, testInfo: TestInfo) {
  await open(page, '/login', testInfo);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByTestId('current-user')).toContainText(email);
}

/** A second, independent browser (another device), with the same JavaScript setting. */
export async function secondDevice(browser: Browser, testInfo: TestInfo): Promise<Page> {
  const context = await browser.newContext({
    baseURL: testInfo.project.use.baseURL,
    javaScriptEnabled: !noJs(testInfo),
  });
  return context.newPage();
}

/** The shop admin, logged in on a device of their own. */
export async function adminDevice(browser: Browser, testInfo: TestInfo): Promise<Page> {
  const admin = await secondDevice(browser, testInfo);
  await open(admin, '/login', testInfo);
  await admin.getByLabel('Email').fill(ADMIN_EMAIL);
  await admin.getByLabel('Password').fill(ADMIN_PASSWORD);
  await admin.getByRole('button', { name: 'Log in' }).click();
  await expect(admin.getByTestId('current-user')).toContainText(ADMIN_EMAIL);
  return admin;
}

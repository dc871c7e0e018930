import { test as base, BrowserContext, expect, Page, TestInfo } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { ADMIN_EMAIL, ADMIN_PASSWORD } from '../playwright.config';
import { addFromProductPage, open, noJs, uniqueEmail } from './helpers';

/**
 * axe runs as a script in the page, which a context with JavaScript disabled refuses. In the
 * nojs project the scanned page therefore runs in a context with JavaScript on but the app's
 * own scripts (everything under /pkg/) blocked: the server-rendered markup, never hydrated,
 * its forms posting as plain HTML forms — what a browser without JavaScript gets.
 */
const test = base.extend({
  page: async ({ page, browser }, use, testInfo) => {
    if (!noJs(testInfo)) {
      await use(page);
      return;
    }
    const context = await browser.newContext({ javaScriptEnabled: true, baseURL: testInfo.project.use.baseURL });
    await context.route(/\/pkg\/.*\.(js|wasm)$/, (route) => route.abort());
    const withoutApp = await context.newPage();
    await use(withoutApp);
    await context.close();
  },
});

/** WCAG 2.0/2.1 A and AA, as the issue asks: the rules a shop is held to. */
const WCAG = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

/** Scans the page as it is now; a violation fails the test with what and where. */
async function expectNoViolations(page: Page, what: string) {
  const results = await new AxeBuilder({ page }).withTags(WCAG).analyze();
  const found = results.violations.map(
    (v) => `${v.id} (${v.impact}): ${v.help}\n    ${v.nodes.map((n) => n.target.join(' ')).join('\n    ')}`,
  );
  expect(found, `axe violations on ${what} (${page.url()})`).toEqual([]);
}

async function scan(page: Page, path: string, testInfo: TestInfo, expectedStatus = 200) {
  const response = await open(page, path, testInfo);
  expect(response?.status(), `GET ${path}`).toBe(expectedStatus);
  await expectNoViolations(page, path);
}

/** The public pages, anonymous: one test each, so that every test stays well inside its limit. */
const PUBLIC_PAGES: [string, number][] = [
  ['/', 200],
  ['/?q=wool', 200],
  ['/?q=no-such-thing-anywhere', 200],
  ['/?category=hats', 200],
  ['/products/merino-scarf', 200],
  ['/cart', 200],
  ['/login', 200],
  ['/register', 200],
  ['/products/no-such-coat', 404],
  ['/no/such/page', 404],
];

for (const [path, status] of PUBLIC_PAGES) {
  test(`the public page ${path} has no accessibility violations`, async ({ page }, testInfo) => {
    await scan(page, path, testInfo, status);
  });
}

test('a rejected login has no accessibility violations', async ({ page }, testInfo) => {
  await open(page, '/login', testInfo);
  await page.getByLabel('Email').fill(uniqueEmail('nobody', testInfo));
  await page.getByLabel('Password').fill('not a password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByTestId('flash')).toContainText('Wrong email or password');
  await expectNoViolations(page, 'a rejected login');
});

/** The admin logged in, with two scarves in the cart (added before logging in: a message shows). */
async function adminWithCart(page: Page, testInfo: TestInfo) {
  await addFromProductPage(page, 'merino-scarf', 2, testInfo);
  await open(page, '/login', testInfo);
  await page.getByLabel('Email').fill(ADMIN_EMAIL);
  await page.getByLabel('Password').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByTestId('current-user')).toContainText(ADMIN_EMAIL);
}

test('a product page with a message has no accessibility violations', async ({ page }, testInfo) => {
  await addFromProductPage(page, 'merino-scarf', 2, testInfo);
  await expectNoViolations(page, 'a product page with a message');
});

/** The pages of a logged-in admin with a cart: one test each. */
const ADMIN_PAGES = [
  '/',
  '/?q=scarf',
  '/products/merino-scarf',
  '/cart',
  '/checkout',
  '/account',
  '/account/sessions',
  '/account/confirm?next=%2Fadmin%2Fsessions',
  '/account/security',
  '/admin/sessions',
  '/admin/api-keys',
  '/admin/sessions?q=example.com',
];

/**
 * One page per test, all on one logged-in page (one login per project, not one per page): the
 * tests of this group run in order in one worker.
 */
test.describe('a logged-in admin with a cart', () => {
  test.describe.configure({ mode: 'serial' });
  let context: BrowserContext;
  let page: Page;

  test.beforeAll(async ({ browser }, testInfo) => {
    // As the `page` fixture above: in nojs, the app's scripts blocked so that axe can run.
    context = await browser.newContext({ javaScriptEnabled: true, baseURL: testInfo.project.use.baseURL });
    if (noJs(testInfo)) await context.route(/\/pkg\/.*\.(js|wasm)$/, (route) => route.abort());
    page = await context.newPage();
    await adminWithCart(page, testInfo);
  });

  test.afterAll(async () => {
    await context.close();
  });

  for (const path of ADMIN_PAGES) {
    test(`${path} of a logged-in admin with a cart has no accessibility violations`, async ({}, testInfo) => {
      await scan(page, path, testInfo);
    });
  }
});

test('the order page and the account after a checkout have no accessibility violations', async ({ page }, testInfo) => {
  // A login, a checkout and three scans: three times the usual limit, so it stays well inside
  // it on a slow machine.
  test.slow();
  await adminWithCart(page, testInfo);
  await open(page, '/checkout', testInfo);
  await page.getByTestId('place-order').click();
  await expect(page).toHaveURL(/\/orders\/\d+$/);
  if (!noJs(testInfo)) await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
  await expectNoViolations(page, 'the order page');
  await scan(page, page.url().replace(/^https?:\/\/[^/]+/, ''), testInfo);
  await scan(page, '/account', testInfo);
});

/**
 * Presses Tab until `target` has the keyboard focus (at most `limit` times), checking on the
 * way that every stop shows a visible focus indicator.
 */
async function tabTo(page: Page, target: ReturnType<Page['locator']>, limit = 60) {
  // The page and its stylesheet loaded (after a form post, the URL changes first).
  await page.waitForLoadState('load');
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press('Tab');
    // After the last control, Tab leaves the page for the browser's own controls (the body
    // is then the active element); the next Tab comes back to the top of the page.
    const outline = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return 'outside the page';
      const style = getComputedStyle(el);
      return style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2 ? 'visible' : `${el.outerHTML.slice(0, 120)}`;
    });
    expect(['visible', 'outside the page'], 'the focused element shows a focus outline').toContain(outline);
    if (await target.evaluate((el) => el === document.activeElement)) return;
  }
  throw new Error(`${await target.evaluate((el) => el.outerHTML.slice(0, 120))} not reached in ${limit} Tabs`);
}

test('a shopper adds to cart, registers and checks out with the keyboard alone', async ({ page }, testInfo) => {
  // Many pages and dozens of key presses: three times the usual limit, so it stays well inside
  // it on a slow machine.
  test.slow();
  const email = `keyboard-${testInfo.project.name}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}@example.com`;
  await open(page, '/products/merino-scarf', testInfo);
  // The first Tab stop skips the navigation.
  await page.keyboard.press('Tab');
  await expect(page.getByRole('link', { name: 'Skip to content' })).toBeFocused();
  await expect(page.getByRole('link', { name: 'Skip to content' })).toBeVisible();

  await tabTo(page, page.getByTestId('add-to-cart').getByRole('button', { name: 'Add to cart' }));
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('flash')).toContainText('to your cart');
  await expect(page.getByTestId('cart-count')).toHaveText('1');

  await tabTo(page, page.getByRole('link', { name: /^Cart/ }));
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/cart$/);
  await tabTo(page, page.getByRole('link', { name: 'Proceed to checkout' }));
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/login\?next=/);
  await tabTo(page, page.getByRole('link', { name: 'Create an account' }));
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/register\?next=/);

  await tabTo(page, page.getByLabel('Email'));
  await page.keyboard.type(email);
  await page.keyboard.press('Tab');
  await expect(page.getByLabel('Password')).toBeFocused();
  await page.keyboard.type('correct horse battery staple');
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/checkout$/);
  await expect(page.getByTestId('current-user')).toContainText(email);

  await tabTo(page, page.getByTestId('place-order'));
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/orders\/\d+$/);
  await expect(page.getByTestId('cart-count')).toHaveText('0');
});

import { test, expect } from '@playwright/test';
import {
  addFromProductPage, expectCartCount, noJs, open, register, sessionCookie, uniqueEmail, PASSWORD,
} from './helpers';

test('browse, search, add, change quantity, register, keep the cart, check out, see the order', async ({ page, context }, testInfo) => {
  // A dozen pages and a registration: three times the usual limit, well inside it on a slow
  // machine.
  test.slow();
  // Browse and search.
  await open(page, '/', testInfo);
  await page.getByLabel('Search').fill('merino');
  await page.getByRole('button', { name: 'Show' }).click();
  await expect(page).toHaveURL(/q=merino/);
  const card = page.locator('[data-testid="product-card"][data-slug="merino-scarf"]');
  await expect(card).toHaveCount(1);
  if (!noJs(testInfo)) await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);

  // Add from the listing, then more from the product page.
  await card.getByRole('button', { name: 'Add to cart: Merino Scarf' }).click();
  await expect(page.getByTestId('flash')).toContainText('Added 1 × Merino Scarf');
  await expectCartCount(page, 1);
  await addFromProductPage(page, 'merino-scarf', 2, testInfo);
  await expectCartCount(page, 3);
  await addFromProductPage(page, 'knit-beanie', 1, testInfo);
  await expectCartCount(page, 4);

  // Change a quantity and remove a line on the cart page.
  await open(page, '/cart', testInfo);
  const scarfLine = page.locator('[data-testid="cart-line"]', { hasText: 'Merino Scarf' });
  await expect(scarfLine).toHaveAttribute('data-quantity', '3');
  await scarfLine.getByLabel('Quantity of Merino Scarf').fill('2');
  await scarfLine.getByRole('button', { name: 'Update' }).click();
  await expect(page.locator('[data-testid="cart-line"]', { hasText: 'Merino Scarf' })).toHaveAttribute('data-quantity', '2');
  await page.getByRole('button', { name: 'Remove Knit Beanie' }).click();
  await expect(page.getByTestId('cart-line')).toHaveCount(1);
  await expect(page.getByTestId('cart-total')).toHaveAttribute('data-cents', String(2 * 4900));
  await expectCartCount(page, 2);

  // Checkout needs a login: the shopper registers from there and comes back with the cart.
  const before = await sessionCookie(context);
  expect(before).toBeTruthy();
  await page.getByRole('link', { name: 'Proceed to checkout' }).click();
  await expect(page).toHaveURL(/\/login\?next=/);
  await page.getByRole('link', { name: 'Create an account' }).click();
  // The registration form itself (the login form also has an "Email" field).
  await expect(page).toHaveURL(/\/register\?next=/);
  await expect(page.getByRole('button', { name: 'Create account' })).toBeVisible();
  const email = uniqueEmail('journey', testInfo);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/checkout$/);
  await expect(page.getByTestId('current-user')).toContainText(email);
  const after = await sessionCookie(context);
  expect(after).toBeTruthy();
  expect(after).not.toBe(before);
  await expect(page.getByTestId('checkout-line')).toHaveCount(1);
  await expect(page.getByTestId('cart-total')).toHaveAttribute('data-cents', String(2 * 4900));

  // Place the order and find it in the account.
  await page.getByTestId('place-order').click();
  await expect(page).toHaveURL(/\/orders\/\d+$/);
  await expect(page.getByTestId('order-total')).toHaveAttribute('data-cents', String(2 * 4900));
  await expectCartCount(page, 0);
  const orderId = await page.getByTestId('order-id').getAttribute('data-order-id');
  await open(page, '/account', testInfo);
  await expect(page.locator(`[data-testid="order-row"][data-order-id="${orderId}"]`)).toHaveCount(1);
});

test('logging out destroys the session: the cart is gone', async ({ page, context }, testInfo) => {
  await register(page, uniqueEmail('logout', testInfo), testInfo);
  await addFromProductPage(page, 'felt-fedora', 1, testInfo);
  await expectCartCount(page, 1);
  const loggedIn = await sessionCookie(context);
  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page.getByRole('link', { name: 'Log in', exact: true })).toBeVisible();
  await expectCartCount(page, 0);
  expect(await sessionCookie(context)).toBeUndefined();

  // The old cookie, replayed, is just an anonymous visitor.
  await context.addCookies([{ name: 'id', value: loggedIn!, domain: '127.0.0.1', path: '/' }]);
  await open(page, '/cart', testInfo);
  await expect(page.getByTestId('cart-empty')).toBeVisible();
  await expect(page.getByTestId('current-user')).toHaveCount(0);
});

test('a wrong password shows a message and keeps the email', async ({ page }, testInfo) => {
  const email = uniqueEmail('wrongpw', testInfo);
  await register(page, email, testInfo);
  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page.getByRole('link', { name: 'Log in', exact: true })).toBeVisible();
  await open(page, '/login', testInfo);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('not my password at all');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByTestId('flash')).toHaveText('Wrong email or password.');
  await expect(page.getByLabel('Email')).toHaveValue(email);
  await expect(page.getByTestId('current-user')).toHaveCount(0);
});

test('an impossible quantity is refused with a message', async ({ page }, testInfo) => {
  await open(page, '/products/alpine-down-parka', testInfo);
  const quantity = page.getByLabel('Quantity', { exact: true });
  // Bypass the browser's own max check to reach the server's rule.
  await quantity.evaluate((input: HTMLInputElement) => input.removeAttribute('max'));
  await quantity.fill('31');
  await page.getByTestId('add-to-cart').getByRole('button', { name: 'Add to cart' }).click();
  await expect(page.getByTestId('flash')).toContainText('Only 30 of Alpine Down Parka available');
  await expectCartCount(page, 0);
});

import { test, expect } from '@playwright/test';
import { noJs, waitForHydration } from './helpers';

test('the catalog shows at least 12 products', async ({ page }) => {
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Catalog' })).toBeVisible();
  const cards = page.getByTestId('product-card');
  expect(await cards.count()).toBeGreaterThanOrEqual(12);
  await expect(page.getByTestId('cart-count')).toHaveText('0');
  // Images and styles load.
  const image = cards.first().locator('img');
  await expect(image).toHaveJSProperty('complete', true);
  expect(await image.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBeGreaterThan(0);
  const headerColor = await page.locator('header').evaluate((el) => getComputedStyle(el).backgroundColor);
  expect(headerColor).not.toBe('rgba(0, 0, 0, 0)');
});

test('a product page opens from the catalog', async ({ page }) => {
  await page.goto('/');
  const card = page.locator('[data-testid="product-card"][data-slug="merino-scarf"]');
  await card.getByRole('link', { name: 'Merino Scarf' }).click();
  await expect(page).toHaveURL(/\/products\/merino-scarf$/);
  await expect(page.getByRole('heading', { name: 'Merino Scarf' })).toBeVisible();
  await expect(page.getByTestId('add-to-cart')).toBeVisible();
});

test('an unknown product answers 404', async ({ page }) => {
  const response = await page.goto('/products/no-such-coat');
  expect(response?.status()).toBe(404);
  await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
});

test('search and category filter are in the URL', async ({ page }) => {
  await page.goto('/');
  await page.getByLabel('Search').fill('wool');
  await page.getByLabel('Category').selectOption('hats');
  await page.getByRole('button', { name: 'Show' }).click();
  await expect(page).toHaveURL(/q=wool/);
  await expect(page).toHaveURL(/category=hats/);
  // Read until the new page's cards are all there (the URL changes before they are parsed).
  await expect
    .poll(() => page.getByTestId('product-card').evaluateAll((cards) => cards.map((c) => c.getAttribute('data-slug'))))
    .toEqual(['felt-fedora', 'knit-beanie', 'wool-flat-cap']);
});

test('the quantity buttons work once hydrated', async ({ page }, testInfo) => {
  await page.goto('/products/merino-scarf');
  const quantity = page.getByLabel('Quantity', { exact: true });
  await expect(quantity).toHaveValue('1');
  if (noJs(testInfo)) {
    // Without JavaScript the plain number field is all there is, and it still works.
    await expect(page.getByTestId('quantity-increase')).toHaveCount(0);
    await quantity.fill('3');
    await expect(quantity).toHaveValue('3');
    return;
  }
  await waitForHydration(page);
  await page.getByTestId('quantity-increase').click();
  await page.getByTestId('quantity-increase').click();
  await expect(quantity).toHaveValue('3');
  await page.getByTestId('quantity-decrease').click();
  await expect(quantity).toHaveValue('2');
});

test('a quantity typed before the picker hydrated is kept, and the buttons step from it', async ({ page }, testInfo) => {
  // With JavaScript, the wasm held back until the shopper has typed.
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route(/\/pkg\/.*\.wasm$/, async (route) => {
    await held;
    await route.continue();
  });
  await page.goto('/products/merino-scarf');
  const quantity = page.getByLabel('Quantity', { exact: true });
  await quantity.fill('4');
  release();
  if (noJs(testInfo)) {
    // Nothing hydrates: the typed value is simply the field's.
    await expect(quantity).toHaveValue('4');
    await expect(page.getByTestId('quantity-increase')).toHaveCount(0);
    return;
  }
  await waitForHydration(page);
  await expect(quantity).toHaveValue('4');
  await page.getByTestId('quantity-increase').click();
  await expect(quantity).toHaveValue('5');
});

import { test, expect } from '@playwright/test';
import { noJs, open } from './helpers';

// The suite's server holds the demo catalog plus 5,000 generated products (playwright.config.ts).

test('the catalog pages a 5,015-product assortment with links that keep search, category and sort', async ({
  page,
}, testInfo) => {
  const response = await open(page, '/', testInfo);
  const html = await response!.text();
  expect(html.length, 'a catalog page stays small').toBeLessThan(60_000);
  await expect(page.getByTestId('product-card')).toHaveCount(24);
  await expect(page.getByTestId('result-count')).toHaveText('1–24 of 5,015 products');

  // Next page, then a jump to the last through the numbered links.
  const pager = page.getByTestId('pager');
  await pager.getByRole('link', { name: 'Next →' }).click();
  await expect(page).toHaveURL(/\/\?page=2$/);
  await expect(page.getByTestId('result-count')).toHaveText('25–48 of 5,015 products');
  await expect(pager.locator('[aria-current="page"]')).toHaveText('2');
  await pager.getByRole('link', { name: 'Page 209' }).click();
  await expect(page).toHaveURL(/\/\?page=209$/);
  await expect(page.getByTestId('product-card')).toHaveCount(5015 - 208 * 24);
  await expect(pager.getByRole('link', { name: 'Next →' })).toHaveCount(0);

  // A search over the whole assortment, then a sort: the search and the category stay.
  await page.getByLabel('Search').fill('linen');
  await page.getByLabel('Category').selectOption('assortment');
  await page.getByRole('button', { name: 'Show' }).click();
  await expect(page).toHaveURL(/\?q=linen&category=assortment$/);
  const count = page.getByTestId('result-count');
  await expect(count).toContainText(/^1–24 of \d+ products$/);
  const total = Number(await count.getAttribute('data-total'));
  expect(total).toBeGreaterThan(24);
  await page.getByRole('navigation', { name: 'Sort products' }).getByRole('link', { name: 'Price: high to low' }).click();
  await expect(page).toHaveURL(/\?q=linen&category=assortment&sort=price-desc$/);
  await expect(count).toHaveAttribute('data-total', String(total));
  // The sorted page is the one shown (the total alone does not change with the sort).
  await expect(
    page.getByRole('navigation', { name: 'Sort products' }).getByRole('link', { name: 'Price: high to low' }),
  ).toHaveAttribute('aria-current', 'true');
  await expect(pager.getByRole('link', { name: 'Next →' })).toHaveAttribute('href', /sort=price-desc/);
  await pager.getByRole('link', { name: 'Next →' }).click();
  await expect(page).toHaveURL(/\?q=linen&category=assortment&sort=price-desc&page=2$/);
  await expect(page.getByLabel('Search')).toHaveValue('linen');
  const cards = page.getByTestId('product-card');
  await expect(cards).toHaveCount(24);
  for (const slug of await cards.evaluateAll((els) => els.map((el) => el.getAttribute('data-slug')))) {
    expect(slug).toMatch(/^assortment-/);
  }
  // The prices on page 2 go down, as on page 1.
  const prices = await cards.locator('.product-card__price').allTextContents();
  const cents = prices.map((p) => Number(p.replace(/[^0-9]/g, '')));
  expect([...cents].sort((a, b) => b - a)).toEqual(cents);

  // A page past the end: 404 with a way to the last page.
  const missing = await open(page, '/?page=999', testInfo);
  expect(missing!.status()).toBe(404);
  await page.getByTestId('no-such-page').getByRole('link', { name: 'Go to the last page' }).click();
  await expect(page).toHaveURL(/\/\?page=209$/);
  if (!noJs(testInfo)) await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
});

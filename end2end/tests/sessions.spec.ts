import { test, expect, Page, TestInfo } from '@playwright/test';
import { ADMIN_EMAIL } from '../playwright.config';
import {
  addFromProductPage, adminDevice, expectCartCount, login, noJs, open, register, secondDevice, sessionCookie,
  uniqueEmail, PASSWORD,
} from './helpers';

async function expectLoggedOut(page: Page, testInfo: TestInfo) {
  await open(page, '/account', testInfo);
  await expect(page).toHaveURL(/\/login\?next=\/account$/);
  await expect(page.getByTestId('current-user')).toHaveCount(0);
}

test('an admin revokes a shopper, whose next request is logged out with an empty cart', async ({ page, browser }, testInfo) => {
  // Two devices and a dozen pages: three times the usual limit, so it stays well inside it on
  // a slow machine.
  test.slow();
  const email = uniqueEmail('victim', testInfo);
  await register(page, email, testInfo);
  await addFromProductPage(page, 'merino-scarf', 2, testInfo);
  await expectCartCount(page, 2);

  const admin = await adminDevice(browser, testInfo);
  await open(admin, `/admin/sessions?email=${encodeURIComponent(email)}`, testInfo);
  const row = admin.locator(`[data-testid="session-row"][data-user-email="${email}"]`);
  await expect(row).toHaveCount(1);
  await expect(row).toHaveAttribute('data-current', 'false');
  const handle = await row.getAttribute('data-session');
  expect(handle).not.toBe(await sessionCookie(page.context()));
  // Two steps: the link asks, Cancel leaves everything as it was, the confirmation revokes.
  await row.getByTestId('revoke-session').click();
  const confirmation = admin.getByTestId('confirm-revocation');
  await expect(confirmation).toContainText(`Revoke the session of ${email}`);
  await confirmation.getByRole('link', { name: 'Cancel' }).click();
  await expect(confirmation).toHaveCount(0);
  await expect(row).toHaveCount(1);
  await row.getByTestId('revoke-session').click();
  await confirmation.getByRole('button', { name: 'Revoke this session' }).click();
  await expect(admin.getByTestId('flash')).toContainText('revoked');
  await expect(confirmation).toHaveCount(0);
  await expect(admin.locator(`[data-testid="session-row"][data-user-email="${email}"]`)).toHaveCount(0);
  // This revocation's entry (other tests revoke too, on the same server, at the same time).
  await expect(admin.getByTestId('audit-row').filter({ hasText: email })).toHaveCount(1);

  await open(page, '/cart', testInfo);
  await expect(page.getByTestId('cart-empty')).toBeVisible();
  await expectCartCount(page, 0);
  await expectLoggedOut(page, testInfo);
  await admin.context().close();
});

test('a non-admin gets 403 on the admin page', async ({ page }, testInfo) => {
  await register(page, uniqueEmail('nosy', testInfo), testInfo);
  const response = await page.goto('/admin/sessions');
  expect(response?.status()).toBe(403);
  await expect(page.getByTestId('forbidden')).toBeVisible();
  await expect(page.getByTestId('session-row')).toHaveCount(0);
});

test('sign out everywhere else ends the other device only', async ({ page, browser }, testInfo) => {
  // Two devices, three logins: three times the usual limit, well inside it on a slow machine.
  test.slow();
  const email = uniqueEmail('everywhere', testInfo);
  await register(page, email, testInfo);
  const other = await secondDevice(browser, testInfo);
  await login(other, email, testInfo);

  await open(other, '/account/sessions', testInfo);
  await expect(other.getByTestId('session-row')).toHaveCount(2);
  await expect(other.locator('[data-testid="session-row"][data-current="true"]')).toHaveCount(1);
  await other.getByTestId('revoke-others').click();
  await expect(other.getByTestId('flash')).toContainText('Signed out of 1 other session');
  await expect(other.getByTestId('session-row')).toHaveCount(1);

  await expectLoggedOut(page, testInfo);
  await open(other, '/account', testInfo);
  await expect(other.getByTestId('current-user')).toContainText(email);
  await other.context().close();
});

test('changing the password signs out the other device', async ({ page, browser }, testInfo) => {
  // Two devices and a dozen pages: three times the usual limit, so it stays well inside it on
  // a slow machine.
  test.slow();
  const email = uniqueEmail('password', testInfo);
  await register(page, email, testInfo);
  const other = await secondDevice(browser, testInfo);
  await login(other, email, testInfo);
  const before = await sessionCookie(other.context());

  await open(other, '/account/password', testInfo);
  await other.getByLabel('Current password').fill(PASSWORD);
  await other.getByLabel('New password').fill('an entirely new passphrase');
  await other.getByRole('button', { name: 'Change password' }).click();
  await expect(other.getByTestId('flash')).toContainText('Your password is changed');
  expect(await sessionCookie(other.context())).not.toBe(before);

  await expectLoggedOut(page, testInfo);
  await open(other, '/account', testInfo);
  await expect(other.getByTestId('current-user')).toContainText(email);
  await other.context().close();
});

test('"Revoke all of this user" lines up with "Revoke" at every width, and asks before it acts', async ({ page, browser }, testInfo) => {
  // Two devices, four widths: three times the usual limit, well inside it on a slow machine.
  test.slow();
  const email = uniqueEmail('aligned', testInfo);
  await register(page, email, testInfo);
  const admin = await adminDevice(browser, testInfo);
  await open(admin, `/admin/sessions?email=${encodeURIComponent(email)}`, testInfo);
  const row = admin.locator(`[data-testid="session-row"][data-user-email="${email}"]`);
  for (const width of [360, 600, 900, 1280]) {
    await admin.setViewportSize({ width, height: 800 });
    const one = await row.getByTestId('revoke-session').boundingBox();
    const all = await row.getByTestId('revoke-user').boundingBox();
    expect(one && all, `both controls are shown at ${width}px`).toBeTruthy();
    // Side by side on one line (same top), or stacked in one column (same left edge).
    const sameLine = Math.abs(one!.y - all!.y) <= 2;
    const sameColumn = Math.abs(one!.x - all!.x) <= 2;
    expect(sameLine || sameColumn, `at ${width}px: Revoke ${JSON.stringify(one)}, Revoke all ${JSON.stringify(all)}`).toBe(true);
    expect(one!.height, 'a comfortable target').toBeGreaterThanOrEqual(18);
  }
  await admin.setViewportSize({ width: 1280, height: 800 });
  await row.getByTestId('revoke-user').click();
  const confirmation = admin.getByTestId('confirm-revocation');
  await expect(confirmation).toContainText(`Revoke every session of ${email}`);
  await confirmation.getByRole('button', { name: 'Revoke all their sessions' }).click();
  await expect(admin.getByTestId('flash')).toContainText(`Ended 1 session(s) of ${email}`);
  await expect(row).toHaveCount(0);
  await expectLoggedOut(page, testInfo);
  await admin.context().close();
});

test('"Keep me signed in" decides whether the login outlives the browser', async ({ page, browser }, testInfo) => {
  // Three devices, three logins: three times the usual limit, well inside it on a slow machine.
  test.slow();
  const email = uniqueEmail('remember', testInfo);
  await register(page, email, testInfo);
  const idCookie = async (p: Page) => (await p.context().cookies()).find((c) => c.name === 'id' || c.name === '__Host-id');

  // Unticked: a cookie without expiry (the browser drops it when it closes).
  const brief = await secondDevice(browser, testInfo);
  await open(brief, '/login', testInfo);
  await brief.getByLabel('Email').fill(email);
  await brief.getByLabel('Password').fill(PASSWORD);
  await expect(brief.getByLabel('Keep me signed in')).not.toBeChecked();
  await brief.getByRole('button', { name: 'Log in' }).click();
  await expect(brief.getByTestId('current-user')).toContainText(email);
  expect((await idCookie(brief))?.expires, 'a browser-session cookie').toBe(-1);

  // Ticked: a cookie that lasts the session idle timeout (7 days by default).
  const kept = await secondDevice(browser, testInfo);
  await open(kept, '/login', testInfo);
  await kept.getByLabel('Email').fill(email);
  await kept.getByLabel('Password').fill(PASSWORD);
  await kept.getByLabel('Keep me signed in').check();
  await kept.getByRole('button', { name: 'Log in' }).click();
  await expect(kept.getByTestId('current-user')).toContainText(email);
  const expires = (await idCookie(kept))?.expires ?? 0;
  expect(expires - Date.now() / 1000).toBeGreaterThan(6.9 * 24 * 3600);

  // Each session says which kind it is.
  await open(kept, '/account/sessions', testInfo);
  const current = kept.locator('[data-testid="session-row"][data-current="true"]');
  await expect(current.getByTestId('session-kind')).toHaveText('Kept signed in');
  await expect(kept.getByTestId('session-kind').filter({ hasText: 'Until the browser closes' })).toHaveCount(2);
  await brief.context().close();
  await kept.context().close();
});

test("an admin's revocation reaches the victim's open tab within 2 seconds, without a click", async ({ page, browser }, testInfo) => {
  // Two devices and a dozen pages: three times the usual limit, so it stays well inside it on
  // a slow machine.
  test.slow();
  const email = uniqueEmail('open-tab', testInfo);
  await register(page, email, testInfo);
  await addFromProductPage(page, 'merino-scarf', 1, testInfo);
  await open(page, '/account', testInfo);
  await expect(page.getByTestId('signed-out-notice')).toHaveCount(0);

  const admin = await adminDevice(browser, testInfo);
  await open(admin, `/admin/sessions?email=${encodeURIComponent(email)}`, testInfo);
  const row = admin.locator(`[data-testid="session-row"][data-user-email="${email}"]`);
  await row.getByTestId('revoke-session').click();
  await admin.getByTestId('confirm-revocation').getByRole('button', { name: 'Revoke this session' }).click();
  await expect(admin.getByTestId('flash')).toContainText('revoked');
  const revokedAt = Date.now();

  if (noJs(testInfo)) {
    // Without JavaScript nothing changes until the next request, which shows it as always.
    await page.waitForTimeout(2_500);
    await expect(page.getByTestId('current-user')).toContainText(email);
    await open(page, '/account', testInfo);
    await expect(page).toHaveURL(/\/login\?next=/);
  } else {
    // The open tab says so by itself, and its header shows nobody logged in and no cart.
    await expect(page.getByTestId('signed-out-notice')).toContainText('You were signed out', { timeout: 2_000 });
    console.log(`signed-out notice ${Date.now() - revokedAt} ms after the revocation (${testInfo.project.name})`);
    await expect(page.getByRole('link', { name: 'Log in' }).first()).toBeVisible();
    await expectCartCount(page, 0);
  }
  await admin.context().close();
});

test('the security log shows the account its own logins and failed attempts, newest first', async ({ page, browser }, testInfo) => {
  // Two devices and a few pages: three times the usual limit, well inside it on a slow machine.
  test.slow();
  const email = uniqueEmail('log', testInfo);
  await register(page, email, testInfo);
  await open(page, '/account', testInfo);
  await page.getByRole('link', { name: 'Security log' }).click();
  await expect(page).toHaveURL(/\/account\/security$/);
  const events = page.getByTestId('security-event');
  await expect(events).toHaveCount(1);
  await expect(events.first()).toHaveAttribute('data-kind', 'login');
  await expect(events.first()).toContainText('Account created');

  // A wrong password on another device, then the right one there.
  const other = await secondDevice(browser, testInfo);
  await open(other, '/login', testInfo);
  await other.getByLabel('Email').fill(email);
  await other.getByLabel('Password').fill('not the password');
  await other.getByRole('button', { name: 'Log in' }).click();
  await expect(other.getByTestId('flash')).toContainText('Wrong email or password');
  await login(other, email, testInfo);

  await open(page, '/account/security', testInfo);
  await expect(events).toHaveCount(3);
  expect(await events.evaluateAll((rows) => rows.map((r) => r.getAttribute('data-kind')))).toEqual([
    'login', 'login_failed', 'login',
  ]);
  await expect(events.nth(1)).toContainText('Wrong password');
  await other.context().close();
});

test('an admin creates an API key, sees it once, and revokes it', async ({ browser }, testInfo) => {
  test.slow();
  const admin = await adminDevice(browser, testInfo);
  const name = `key-${testInfo.project.name}-${Date.now().toString(36)}`;
  await open(admin, '/account', testInfo);
  await admin.getByRole('link', { name: 'API keys (admin)' }).click();
  await expect(admin).toHaveURL(/\/admin\/api-keys$/);
  await admin.getByLabel('Name').fill(name);
  await admin.getByRole('button', { name: 'Create key' }).click();
  await expect(admin.getByTestId('flash')).toContainText('cck_');
  const row = admin.locator(`[data-testid="api-key-row"][data-name="${name}"]`);
  await expect(row).toHaveAttribute('data-revoked', 'false');
  // Shown once: the page again lists its prefix only.
  await open(admin, '/admin/api-keys', testInfo);
  await expect(admin.getByTestId('flash')).toHaveCount(0);
  await expect(row).toContainText('cck_');
  await row.getByRole('button', { name: `Revoke the key ${name}` }).click();
  await expect(admin.getByTestId('flash')).toContainText('Revoked the API key');
  await expect(row).toHaveAttribute('data-revoked', 'true');
  await admin.context().close();
});

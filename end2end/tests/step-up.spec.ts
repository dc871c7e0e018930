import { test, expect } from '@playwright/test';
import { ADMIN_PASSWORD, SUDO_SECONDS } from '../playwright.config';
import { adminDevice, open, register, uniqueEmail } from './helpers';

// Runs on the step-up server, whose sudo window is SUDO_SECONDS (playwright.config.ts).

test('a revocation asked for after the sudo window goes through the password first, then back', async ({ page, browser }, testInfo) => {
  // Two devices, a wait through the window, a dozen pages: three times the usual limit.
  test.slow();
  const email = uniqueEmail('victim', testInfo);
  await register(page, email, testInfo);
  const admin = await adminDevice(browser, testInfo);
  // The login's password entry runs out.
  await admin.waitForTimeout(SUDO_SECONDS * 1000 + 500);

  const list = `/admin/sessions?email=${encodeURIComponent(email)}`;
  await open(admin, list, testInfo);
  const row = admin.locator(`[data-testid="session-row"][data-user-email="${email}"]`);
  await row.getByTestId('revoke-session').click();
  await admin.getByTestId('confirm-revocation').getByRole('button', { name: 'Revoke this session' }).click();

  // Sent to enter the password again; nothing was done.
  await expect(admin).toHaveURL(/\/account\/confirm\?next=%2Fadmin%2Fsessions/);
  await expect(admin.getByRole('heading', { name: 'Confirm your password' })).toBeVisible();
  await open(page, '/account', testInfo);
  await expect(page.getByTestId('current-user')).toContainText(email);

  // A wrong password is refused on the page.
  await admin.getByLabel('Password').fill('not my password at all');
  await admin.getByTestId('confirm-password').click();
  await expect(admin.getByTestId('flash')).toContainText('That is not your password.');
  await expect(admin).toHaveURL(/\/account\/confirm\?next=/);

  // The right one: back to the question, which now revokes.
  await admin.getByLabel('Password').fill(ADMIN_PASSWORD);
  await admin.getByTestId('confirm-password').click();
  await expect(admin).toHaveURL(/\/admin\/sessions\?.*confirm=/);
  const confirmation = admin.getByTestId('confirm-revocation');
  await expect(confirmation).toContainText(`Revoke the session of ${email}`);
  await confirmation.getByRole('button', { name: 'Revoke this session' }).click();
  await expect(admin.getByTestId('flash')).toContainText('revoked');
  await expect(admin.locator(`[data-testid="session-row"][data-user-email="${email}"]`)).toHaveCount(0);

  await open(page, '/account', testInfo);
  await expect(page).toHaveURL(/\/login\?next=\/account$/);
  await admin.context().close();
});

import { expect, Page, TestInfo } from '@playwright/test';

/** True in the project that runs with JavaScript disabled. */
export const noJs = (testInfo: TestInfo) => testInfo.project.name === 'nojs';

/** Waits until the wasm has hydrated the page (the quantity buttons only exist then). */
export async function waitForHydration(page: Page) {
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
}

import { defineConfig } from '@playwright/test';

// The release server on its own port and a fresh database for each run.
const port = Number(process.env.E2E_PORT ?? 3210);
const baseURL = `http://127.0.0.1:${port}`;

// The shop admin created before the servers start (see webServer, and `make test-e2e`, which
// hands the same two values to .ci/cluster).
export const ADMIN_EMAIL = process.env.COATCHECK_ADMIN_EMAIL ?? 'admin@example.com';
export const ADMIN_PASSWORD = process.env.COATCHECK_PASSWORD ?? 'admin password for the e2e suite';

// Two instances on PostgreSQL behind nginx in round robin (.ci/cluster, which `make test`
// runs the suite under): the shopper and admin journeys again, each request of one browser on
// whichever instance nginx picks.
const clusterURL = process.env.E2E_CLUSTER_URL;

// A second server whose sudo window is a few seconds (COATCHECK_SUDO_TIMEOUT), for the
// confirmation step of sensitive actions (step-up.spec.ts): a test waits it out instead of
// fifteen minutes. Every other spec runs against the default window.
const stepUpPort = port + 1;
const stepUpURL = `http://127.0.0.1:${stepUpPort}`;
export const SUDO_SECONDS = 10;
if (!clusterURL) {
  console.warn('E2E_CLUSTER_URL is not set: the js-cluster project is left out (make test-e2e runs it)');
}

const chromium = {
  browserName: 'chromium' as const,
  launchOptions: {
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  },
};

export default defineConfig({
  testDir: './tests',
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: true,
  workers: 2,
  // No retries, on CI either: a test that fails once is a bug to find, not to hide.
  retries: 0,
  reporter: [['list'], ['./slowest-reporter.ts']],
  use: { baseURL, trace: 'retain-on-failure' },
  projects: [
    // cluster.spec.ts is about the load balancer in front: js-cluster only.
    { name: 'js', testIgnore: /(cluster|step-up)\.spec\.ts/, use: { ...chromium, javaScriptEnabled: true } },
    { name: 'nojs', testIgnore: /(cluster|step-up)\.spec\.ts/, use: { ...chromium, javaScriptEnabled: false } },
    {
      name: 'step-up-js',
      testMatch: /step-up\.spec\.ts/,
      use: { ...chromium, javaScriptEnabled: true, baseURL: stepUpURL },
    },
    {
      name: 'step-up-nojs',
      testMatch: /step-up\.spec\.ts/,
      use: { ...chromium, javaScriptEnabled: false, baseURL: stepUpURL },
    },
    ...(clusterURL
      ? [
          {
            name: 'js-cluster',
            testMatch: /(shopper|sessions|cluster)\.spec\.ts/,
            use: { ...chromium, javaScriptEnabled: true, baseURL: clusterURL },
          },
        ]
      : []),
  ],
  webServer: [
    {
      cwd: '..',
      command:
        'rm -rf target/e2e && mkdir -p target/e2e && target/release/coatcheck migrate && ' +
        `target/release/coatcheck user create --email ${ADMIN_EMAIL} --admin && ` +
        // A shop-sized catalog (the demo's 15 products first, then 5,000 generated ones in an
        // "Assortment" category) for the paging tests; the first page stays the demo's.
        'target/release/coatcheck assortment --products 5000 && ' +
        'exec target/release/coatcheck serve',
      url: `${baseURL}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: 'pipe',
      stderr: 'pipe',
      env: {
        LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
        LEPTOS_SITE_ROOT: 'target/site',
        DATABASE_URL: 'sqlite://target/e2e/coatcheck.db',
        RUST_LOG: 'warn',
        COATCHECK_PASSWORD: ADMIN_PASSWORD,
        COATCHECK_TRUSTED_PROXIES: '',
        // Every browser of the suite comes from 127.0.0.1: per-address budgets that a whole
        // shop's worth of visitors fits in (the budgets have their own Rust tests).
        COATCHECK_NEW_SESSIONS_BURST: '100000',
        COATCHECK_REGISTRATIONS_PER_ADDRESS: '100000',
      },
    },
    {
      cwd: '..',
      command:
        'rm -rf target/e2e-step-up && mkdir -p target/e2e-step-up && ' +
        'target/release/coatcheck migrate && ' +
        `target/release/coatcheck user create --email ${ADMIN_EMAIL} --admin && ` +
        'exec target/release/coatcheck serve',
      url: `${stepUpURL}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: 'pipe',
      stderr: 'pipe',
      env: {
        LEPTOS_SITE_ADDR: `127.0.0.1:${stepUpPort}`,
        LEPTOS_SITE_ROOT: 'target/site',
        DATABASE_URL: 'sqlite://target/e2e-step-up/coatcheck.db',
        RUST_LOG: 'warn',
        COATCHECK_PASSWORD: ADMIN_PASSWORD,
        COATCHECK_TRUSTED_PROXIES: '',
        COATCHECK_NEW_SESSIONS_BURST: '100000',
        COATCHECK_REGISTRATIONS_PER_ADDRESS: '100000',
        COATCHECK_SUDO_TIMEOUT: `${SUDO_SECONDS}s`,
      },
    },
  ],
});

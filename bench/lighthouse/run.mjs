// Lighthouse figures of the release build, page by page, mobile (Lighthouse's default
// emulation: a mid-range phone on slow 4G, 4x CPU slowdown) and desktop.
//
//   node run.mjs [--runs N] [--out FILE]
//
// Starts `target/release/coatcheck serve` (or COATCHECK_BIN, its site in COATCHECK_SITE_ROOT) on a throw-away SQLite database and a free port,
// runs Lighthouse N times (default 3) per page and form factor in Debian's Chromium, and
// prints (and with --out, writes) a Markdown table of the medians: performance score, LCP,
// time to interactive, total blocking time, and the bytes of wasm the page downloaded.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer } from 'node:net';
import lighthouse from 'lighthouse';
import * as chromeLauncher from 'chrome-launcher';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
};
const runs = Number(option('--runs', '3'));
const out = option('--out', '');
const root = resolve(import.meta.dirname, '../..');
const binary = process.env.COATCHECK_BIN ?? join(root, 'target/release/coatcheck');
const pages = ['/', '/products/harbour-wool-coat', '/cart', '/login'];

function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

async function startShop() {
  const dir = mkdtempSync(join(tmpdir(), 'coatcheck-lighthouse-'));
  const port = await freePort();
  const env = {
    ...process.env,
    DATABASE_URL: `sqlite://${join(dir, 'shop.db')}`,
    LEPTOS_SITE_ROOT: process.env.COATCHECK_SITE_ROOT ?? join(root, 'target/site'),
    LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
  };
  execFileSync(binary, ['migrate'], { env, stdio: 'ignore' });
  const child = spawn(binary, ['serve'], { env, stdio: 'ignore' });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  return { base, stop: () => { child.kill(); rmSync(dir, { recursive: true, force: true }); } };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

async function measure(chrome, url, desktop) {
  const flags = { port: chrome.port, output: 'json', logLevel: 'error', onlyCategories: ['performance'] };
  const config = desktop
    ? (await import('lighthouse/core/config/desktop-config.js')).default
    : undefined;
  const result = await lighthouse(url, flags, config);
  const lhr = result.lhr;
  const audit = (id) => lhr.audits[id]?.numericValue ?? NaN;
  const wasm = (lhr.audits['network-requests']?.details?.items ?? [])
    .filter((r) => /\.wasm(\?|$)/.test(r.url))
    .reduce((sum, r) => sum + (r.transferSize ?? 0), 0);
  return {
    score: Math.round((lhr.categories.performance.score ?? 0) * 100),
    lcp: audit('largest-contentful-paint'),
    tti: audit('interactive'),
    tbt: audit('total-blocking-time'),
    wasm,
  };
}

const shop = await startShop();
const chrome = await chromeLauncher.launch({
  chromePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  chromeFlags: [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const rows = [];
try {
  for (const desktop of [false, true]) {
    for (const page of pages) {
      const results = [];
      for (let i = 0; i < runs; i++) results.push(await measure(chrome, shop.base + page, desktop));
      const pick = (key) => median(results.map((r) => r[key]));
      rows.push({
        page,
        form: desktop ? 'desktop' : 'mobile',
        score: pick('score'),
        lcp: pick('lcp'),
        tti: pick('tti'),
        tbt: pick('tbt'),
        wasm: pick('wasm'),
      });
      const r = rows.at(-1);
      console.error(`${r.form} ${r.page}: ${r.score}, LCP ${(r.lcp / 1000).toFixed(2)} s, TTI ${(r.tti / 1000).toFixed(2)} s`);
    }
  }
} finally {
  await chrome.kill();
  shop.stop();
}
const commit = (() => {
  try { return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root }).toString().trim(); } catch { return '?'; }
})();
const table = [
  `Lighthouse 12.8.2, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, commit ${commit}, medians of ${runs} runs per row, Debian's Chromium, release build on SQLite.`,
  '',
  '| page | form factor | performance | LCP | time to interactive | total blocking time | wasm transferred |',
  '|---|---|---:|---:|---:|---:|---:|',
  ...rows.map((r) => `| \`${r.page}\` | ${r.form} | ${r.score} | ${(r.lcp / 1000).toFixed(2)} s | ${(r.tti / 1000).toFixed(2)} s | ${Math.round(r.tbt)} ms | ${Math.round(r.wasm / 1024)} KB |`),
  '',
].join('\n');
console.log(table);
if (out) writeFileSync(out, table);

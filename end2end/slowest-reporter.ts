import type { Reporter, TestCase, TestResult } from '@playwright/test/reporter';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Prints the slowest tests and their share of their time limit at the end of a run, so a test
 * creeping towards its limit is seen before a slower machine fails it (every test should stay
 * under half of its limit). Also writes the failed tests, each with the start of its error, to
 * test-results/failures.txt, which `make test-e2e` prints last: the servers' logs printed after
 * a failed run would otherwise push Playwright's own summary out of a CI log's tail.
 */
class SlowestReporter implements Reporter {
  private results: { title: string; duration: number; timeout: number }[] = [];
  private failures: string[] = [];

  onTestEnd(test: TestCase, result: TestResult) {
    const project = test.parent.project()?.name ?? '';
    const title = `[${project}] ${path.basename(test.location.file)}: ${test.title}`;
    this.results.push({ title, duration: result.duration, timeout: test.timeout });
    if (result.status !== 'passed' && result.status !== 'skipped') {
      const error = (result.error?.message ?? result.status).replace(/\u001b\[[0-9;]*m/g, '');
      const start = error.split('\n').slice(0, 12).join('\n    ');
      this.failures.push(`${title} (${result.status} after ${(result.duration / 1000).toFixed(1)} s)\n    ${start}`);
    }
  }

  onEnd() {
    const slowest = [...this.results].sort((a, b) => b.duration / b.timeout - a.duration / a.timeout).slice(0, 8);
    console.log('\nSlowest tests (share of their time limit):');
    for (const r of slowest) {
      const share = Math.round((100 * r.duration) / r.timeout);
      const flag = share > 50 ? '  <-- over half of its limit' : '';
      console.log(`  ${share.toString().padStart(3)} %  ${(r.duration / 1000).toFixed(1)} s of ${r.timeout / 1000} s  ${r.title}${flag}`);
    }
    const file = path.join(__dirname, 'test-results', 'failures.txt');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, this.failures.map((f) => `${f}\n`).join(''));
  }
}

export default SlowestReporter;

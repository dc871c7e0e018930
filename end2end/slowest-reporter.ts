import type { Reporter, TestCase, TestResult } from '@playwright/test/reporter';

/**
 * Prints the slowest tests and their share of their time limit at the end of a run, so a test
 * creeping towards its limit is seen before a slower machine fails it (every test should stay
 * under half of its limit).
 */
class SlowestReporter implements Reporter {
  private results: { title: string; duration: number; timeout: number }[] = [];

  onTestEnd(test: TestCase, result: TestResult) {
    const project = test.parent.project()?.name ?? '';
    this.results.push({ title: `[${project}] ${test.title}`, duration: result.duration, timeout: test.timeout });
  }

  onEnd() {
    const slowest = [...this.results].sort((a, b) => b.duration / b.timeout - a.duration / a.timeout).slice(0, 8);
    console.log('\nSlowest tests (share of their time limit):');
    for (const r of slowest) {
      const share = Math.round((100 * r.duration) / r.timeout);
      const flag = share > 50 ? '  <-- over half of its limit' : '';
      console.log(`  ${share.toString().padStart(3)} %  ${(r.duration / 1000).toFixed(1)} s of ${r.timeout / 1000} s  ${r.title}${flag}`);
    }
  }
}

export default SlowestReporter;

// The long fuzz run: the test suite's targets (test/fuzz.ts) at SPARQ_FUZZ_CASES per target (default
// 20,000: 10⁵ inputs in all) from SPARQ_FUZZ_SEED. Prints the counts and every finding; exits 1 on any.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fuzz } from '../test/fuzz.js';
import { sharedDir } from '../test/helpers.js';
const casesPerTarget = Number(process.env.SPARQ_FUZZ_CASES ?? 20000);
const seed = Number(process.env.SPARQ_FUZZ_SEED ?? 1);
const work = mkdtempSync(join(tmpdir(), 'sparq-fuzz-'));
const started = performance.now();
try {
    const result = await fuzz(sharedDir(), work, { casesPerTarget, seed });
    const seconds = (performance.now() - started) / 1000;
    const summary = { ...result, seed, seconds: Number(seconds.toFixed(1)) };
    writeFileSync(join('bench', 'fuzz-results.json'), `${JSON.stringify(summary, null, 2)}\n`);
    console.log(`${result.cases} inputs in ${seconds.toFixed(0)} s: ${result.typedErrors} typed errors, ${result.accepted} accepted, slowest ${result.slowestMs.toFixed(0)} ms, ${result.findings.length} findings`);
    for (const f of result.findings.slice(0, 20))
        console.log(`- ${f.target}: ${f.input}\n  ${f.error.split('\n').slice(0, 4).join('\n  ')}`);
    process.exitCode = result.findings.length > 0 ? 1 : 0;
}
finally {
    rmSync(work, { recursive: true, force: true });
}
//# sourceMappingURL=fuzz.js.map
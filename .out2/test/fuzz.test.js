// A few thousand mutated safetensors headers and files, configs, index files and recipes per run (fixed
// seed): every one must end in a typed SparqError or a correct result, never another exception or a hang.
// bench/fuzz.ts runs the same targets at 10⁵+ cases.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fuzz } from './fuzz.js';
import { sharedDir } from './helpers.js';
describe('fuzzing the inputs users give', function () {
    this.timeout(300_000);
    it('ends every mutated header, config, index and recipe in a typed error or a correct result', async () => {
        const work = mkdtempSync(join(tmpdir(), 'sparq-fuzz-'));
        try {
            const result = await fuzz(sharedDir(), work, { casesPerTarget: 600, seed: 20261201 });
            console.log(`      ${result.cases} cases: ${result.typedErrors} typed errors, ${result.accepted} accepted, slowest ${result.slowestMs.toFixed(0)} ms`);
            assert.deepEqual(result.findings.slice(0, 5), [], `${result.findings.length} findings`);
            assert.equal(result.cases, 3000);
            // Both outcomes must occur, or the mutations are not reaching the parsers.
            assert.ok(result.typedErrors > 300 && result.accepted > 100, `typed errors ${result.typedErrors}, accepted ${result.accepted}`);
        }
        finally {
            rmSync(work, { recursive: true, force: true });
        }
    });
});
//# sourceMappingURL=fuzz.test.js.map
// `sparq demo` end to end on its quick profile: text from the npm dataset package, a BPE tokenizer, a
// Llama trained by sparq's trainer and cached, every method at every pattern, report.json, the SVG chart
// and the Markdown table; the second run takes the cached model instead of training again.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CLI_JSON_SCHEMAS, matchesSchema } from '../lib/cli/json-schemas.js';
import { DEMO_PROFILES, runDemo, type DemoReport } from '../lib/demo/demo.js';

const run = promisify(execFile);
const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'cli', 'main.js');

describe('sparq demo (quick profile)', function () {
  this.timeout(600_000);
  let scratch: string;
  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'sparq-demo-test-'));
  });
  after(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it('trains and caches a model, prunes and quantizes it with every method, and writes the report, charts and tables; a second run reuses the model', async () => {
    const profile = DEMO_PROFILES.quick;
    const cacheDir = join(scratch, 'cache');
    const out = join(scratch, 'report');
    const lines: string[] = [];
    const report = await runDemo({ profile, out, cacheDir, log: (line) => lines.push(line) });

    assert.equal(report.model.cached, false);
    assert.ok(report.model.trainSeconds! > 0);
    assert.match(report.dataset, /^@stdlib\/datasets-sotu@/);
    const dense = report.results.find((r) => r.method === 'dense')!;
    // Trained, not random: well below the vocabulary size a uniform guess would score.
    assert.ok(dense.perplexity < 0.5 * profile.model.vocabSize, `dense perplexity ${dense.perplexity}`);
    const patterns = [...profile.sparsities.map(String), ...profile.patterns];
    assert.equal(report.results.length, 1 + profile.methods.length * patterns.length + profile.elsa.patterns.length);
    for (const method of profile.methods) {
      for (const pattern of patterns) {
        const r = report.results.find((x) => x.method === method && x.pattern === pattern);
        assert.ok(r && Number.isFinite(r.perplexity), `${method} ${pattern}`);
        const target = pattern.includes(':') ? 0.5 : Number(pattern);
        // Wanda rounds per row of 64 inputs here, so the total can sit up to 1/64 from the target.
        assert.ok(Math.abs(r.sparsity - target) <= 1 / 64, `${method} ${pattern}: sparsity ${r.sparsity}`);
      }
    }

    // Elsa's row: exactly the pattern, and its training budget (steps × 8 windows × seqLen − 1 predictions).
    for (const pattern of profile.elsa.patterns) {
      const r = report.results.find((x) => x.method === 'elsa' && x.pattern === pattern)!;
      assert.ok(Number.isFinite(r.perplexity) && r.perplexity < 0.5 * profile.model.vocabSize, `elsa ${pattern}: ${r.perplexity}`);
      assert.ok(Math.abs(r.sparsity - Number(pattern)) < 1e-3, `elsa ${pattern}: sparsity ${r.sparsity}`);
      assert.equal(r.trainingTokens, profile.elsa.steps * 8 * (profile.model.seqLen - 1));
    }
    assert.deepEqual(report.calibration, { windows: profile.calibrationWindows, seqLen: profile.model.seqLen });

    // The quantization table: every row measured, bits per weight as stored (W4 g32 with f32 scales: 5;
    // GWQ adds its 1% outliers' values and indices; FP8 per channel: 8 plus a scale per row).
    assert.equal(report.quantization.length, profile.quantization.length);
    for (const r of report.quantization) assert.ok(Number.isFinite(r.perplexity) && r.perplexity < 0.5 * profile.model.vocabSize, `${r.method} ${r.scheme}: ${r.perplexity}`);
    const bitsOf = (method: string) => report.quantization.find((r) => r.method === method)!.bitsPerWeight;
    assert.equal(bitsOf('rtn'), 5);
    assert.equal(bitsOf('gptq'), 5);
    assert.ok(bitsOf('gwq') > 5.4 && bitsOf('gwq') < 6.5, `gwq: ${bitsOf('gwq')} bits`);
    assert.ok(bitsOf('hwpq') > 8 && bitsOf('hwpq') < 9, `hwpq: ${bitsOf('hwpq')} bits`);

    assert.deepEqual((await readdir(out)).sort(), ['README.md', 'perplexity.svg', 'quantization.svg', 'report.json']);
    const saved = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as DemoReport;
    assert.deepEqual(saved.results, report.results);
    const svg = await readFile(join(out, 'perplexity.svg'), 'utf8');
    assert.match(svg, /^<svg|^<\?xml/);
    for (const method of profile.methods) assert.ok(svg.includes(`>${method}<`), `legend names ${method}`);
    const table = await readFile(join(out, 'README.md'), 'utf8');
    assert.match(table, /\| method \| 50% \| 70% \| 2:4 \|/);
    assert.match(table, /\| elsa \| — \| \d+\.\d\d \| — \|/, 'elsa has a cell at 70% only');
    assert.match(table, /one-shot methods calibrate on 8 windows of 64 tokens \(512\); elsa trains on 8,064 tokens/);
    assert.ok(svg.includes('>elsa<'), 'legend names elsa');
    assert.match(table, /\| gwq \| W4 g32 \| \d+\.\d\d \| \d+\.\d\d \|/);
    const quantSvg = await readFile(join(out, 'quantization.svg'), 'utf8');
    for (const method of ['rtn', 'gptq', 'gwq', 'hwpq']) assert.ok(quantSvg.includes(`>${method}<`), `quantization legend names ${method}`);

    // The cached model lives under the cache folder with its tokenizer and training record.
    const cached = await readdir(report.model.dir);
    for (const file of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'training.json']) assert.ok(cached.includes(file), file);

    // Second run, through the CLI: no training, the same model, the same dense perplexity.
    const { stdout } = await run(process.execPath, [cli, 'demo', '--quick', '--out', out, '--cache-dir', cacheDir, '--json'], { maxBuffer: 1 << 24 });
    const jsonLines = stdout.split('\n').filter((l) => l.trim() !== '');
    assert.equal(jsonLines.length, 1, 'demo --json prints one line');
    const again = JSON.parse(jsonLines[0]) as DemoReport;
    // The documented schema (test/cli.test.ts checks the other commands; this one needs a trained model).
    assert.deepEqual(matchesSchema(CLI_JSON_SCHEMAS.demo, again), []);
    assert.equal(again.model.cached, true);
    assert.equal(again.model.trainSeconds, null);
    assert.equal(again.model.dir, report.model.dir);
    assert.equal(again.results[0].perplexity, dense.perplexity);
  });
});

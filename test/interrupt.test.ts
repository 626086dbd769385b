// Interrupted compression runs, stopped at exact places through CompressOptions.testHook (never by
// timing): after some of a block's linears are written, with a tensor half written to its staged shard
// (the process killed there, as a crash would), half way through propagating a block's calibration
// batches, and mid-block with `sequential: 'linear'`. Each resumes to the bytes and report of an
// uninterrupted run; a resume with a changed recipe, calibration or sequential mode is refused.
// (test/pipeline.test.ts interrupts at a block boundary; quantize shares the driver and is covered
// here in the compressed-tensors format. Training cannot resume, so it has no case here.)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AbortError, DenseFolder, loadTokenizer, parseRecipe, prune, quantize, SafetensorsFile, type CompressReport, type PruneOptions, type RunPoint } from '../lib/index.js';
import { fixturePath, sharedDir } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'sparq-interrupt-'));
after(() => rmSync(work, { recursive: true, force: true }));
let counter = 0;
const fresh = (label: string) => join(work, `${label}-${++counter}`);
const stories = () => fixturePath('stories260K');

/** The first 16 KB of the calibration text (about 6,000 tokens), tokenized once: every run cuts its windows from it. */
const calibText = join(work, 'calib-16k.txt');
let calibTokens: Int32Array;
before(async () => {
  writeFileSync(calibText, readFileSync(join(sharedDir(), 'data', 'tinystories_calib.txt'), 'utf8').slice(0, 16384));
  calibTokens = (await loadTokenizer(stories())).encode(readFileSync(calibText, 'utf8'));
});

/** 24 windows of 128 tokens: two calibration batches (16 windows each at most), so propagation can stop between them. */
function options(recipe: Record<string, unknown>, extra: Partial<PruneOptions> = {}): PruneOptions {
  return { model: stories(), out: fresh('run'), recipe: parseRecipe(recipe), calibrationTokens: calibTokens, nsamples: 24, seqLen: 128, seed: 5, ...extra };
}

function files(dir: string): Record<string, Buffer> {
  return Object.fromEntries(readdirSync(dir).filter((f) => f.endsWith('.safetensors') || f === 'config.json').map((f) => [f, readFileSync(join(dir, f))]));
}

/** The report's per-linear entries without their timings. */
const entries = (report: CompressReport) => report.linears.map(({ seconds: _, ...rest }) => rest);

/** Runs until `stopAt` matches a point, then aborts there; resolves once the run has rejected with AbortError. */
async function interruptAt(run: (o: PruneOptions) => Promise<CompressReport>, o: PruneOptions, stopAt: (p: RunPoint) => boolean): Promise<RunPoint[]> {
  const controller = new AbortController();
  const seen: RunPoint[] = [];
  await assert.rejects(
    run({
      ...o,
      signal: controller.signal,
      testHook: (p) => {
        seen.push(p);
        if (stopAt(p)) controller.abort();
      },
    }),
    AbortError,
  );
  assert.ok(!existsSync(o.out), 'nothing at --out after an interruption');
  return seen;
}

const SPARSEGPT = { method: 'sparsegpt', sparsity: 0.5 };
const references = new Map<string, { out: string; report: CompressReport }>();
/** One uninterrupted run per recipe, shared by the cases. */
async function reference(key: string, run: (o: PruneOptions) => Promise<CompressReport>, o: PruneOptions) {
  if (!references.has(key)) references.set(key, { out: o.out, report: await run(o) });
  return references.get(key)!;
}

async function assertResumesToReference(run: (o: PruneOptions) => Promise<CompressReport>, o: PruneOptions, key: string, resumedAtBlock: number) {
  const { out, report } = references.get(key)!;
  const resumed = await run({ ...o, resume: true });
  assert.equal(resumed.totals.resumedAtBlock, resumedAtBlock > 0 ? resumedAtBlock : null);
  assert.deepEqual(files(o.out), files(out), 'the same bytes as the uninterrupted run');
  assert.deepEqual(entries(resumed), entries(report), 'the same report entries (errors, sparsity, bits)');
}

describe('interrupted runs resume to the bytes of an uninterrupted run', function () {
  this.timeout(600_000);

  it('stopped after three of block 2\'s seven linears; a changed recipe, calibration or sequential mode is refused', async () => {
    await reference('sparsegpt', prune, options(SPARSEGPT));
    const o = options(SPARSEGPT);
    const seen = await interruptAt(prune, o, (p) => p.at === 'linear' && p.block === 2 && p.name.endsWith('v_proj'));
    assert.deepEqual(seen.filter((p) => p.at === 'linear' && p.block === 2).map((p) => (p as { name: string }).name.split('.').pop()), ['q_proj', 'k_proj', 'v_proj']);
    for (const [change, refused] of [
      [{ recipe: parseRecipe({ ...SPARSEGPT, sparsity: 0.6 }) }, 'recipe'],
      [{ recipe: parseRecipe({ ...SPARSEGPT, sequential: 'linear' }) }, 'sequential'],
      [{ nsamples: 16 }, 'nsamples'],
      [{ seed: 6 }, 'seed'],
    ] as const) {
      await assert.rejects(prune({ ...o, ...change, resume: true }), /used a different model, recipe or calibration; it cannot be resumed/, refused);
    }
    await assertResumesToReference(prune, o, 'sparsegpt', 2);
  });

  it('killed with a tensor half written to its staged shard (a crash, not an abort)', async () => {
    const o = options(SPARSEGPT);
    // A child process runs the same prune and SIGKILLs itself inside the write of block 2's k_proj.
    const index = fileURLToPath(new URL('../lib/index.js', import.meta.url));
    const script = `
      const { prune, parseRecipe } = await import(${JSON.stringify(index)});
      await prune({ ...${JSON.stringify({ ...o, recipe: undefined, calibrationTokens: undefined })}, recipe: parseRecipe(${JSON.stringify(SPARSEGPT)}),
        calibrationTokens: Int32Array.from(${JSON.stringify([...calibTokens])}),
        testHook: (p) => { if (p.at === 'write' && p.block === 2 && p.name.endsWith('k_proj')) process.kill(process.pid, 'SIGKILL'); } });
      console.log('finished');`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(child.signal, 'SIGKILL', `the child should die inside the write: ${child.stdout}${child.stderr}`);
    const staging = DenseFolder.stagingPath(o.out);
    assert.equal(JSON.parse(readFileSync(join(staging, 'sparq-progress.json'), 'utf8')).blocksDone, 2);
    // The staged tensor is torn: its first half is the pruned weight, its second half still the input's.
    const name = 'model.layers.2.self_attn.k_proj.weight';
    const [torn, done, input] = await Promise.all([join(staging, 'model.safetensors'), join((await reference('sparsegpt', prune, options(SPARSEGPT))).out, 'model.safetensors'), join(stories(), 'model.safetensors')].map((f) => SafetensorsFile.open(f)));
    try {
      const [t, d, i] = await Promise.all([torn, done, input].map(async (f) => new Uint8Array((await f.read(name)).data.buffer)));
      const half = t.length / 2;
      assert.deepEqual(t.subarray(0, half), d.subarray(0, half));
      assert.deepEqual(t.subarray(half), i.subarray(half));
      assert.notDeepEqual(d.subarray(half), i.subarray(half));
    } finally {
      await Promise.all([torn, done, input].map((f) => f.close()));
    }
    // The dead run's lock is stale: --resume takes it over.
    await assertResumesToReference(prune, o, 'sparsegpt', 2);
  });

  it('stopped between the two calibration batches of block 1\'s propagation', async () => {
    await reference('sparsegpt', prune, options(SPARSEGPT));
    const o = options(SPARSEGPT);
    const seen = await interruptAt(prune, o, (p) => p.at === 'propagate' && p.block === 1 && p.batch === 0);
    assert.ok(!seen.some((p) => p.at === 'propagate' && p.block === 1 && p.batch === 1), 'the second batch never ran');
    assert.equal(JSON.parse(readFileSync(join(DenseFolder.stagingPath(o.out), 'sparq-progress.json'), 'utf8')).blocksDone, 1);
    await assertResumesToReference(prune, o, 'sparsegpt', 1);
  });

  it('with sequential: linear, stopped after the attention output (later linears re-capture from it)', async () => {
    const recipe = { ...SPARSEGPT, sequential: 'linear' };
    await reference('sequential', prune, options(recipe));
    const o = options(recipe);
    await interruptAt(prune, o, (p) => p.at === 'linear' && p.block === 3 && p.name.endsWith('o_proj'));
    await assertResumesToReference(prune, o, 'sequential', 3);
  });

  it('quantize (GPTQ W8, compressed-tensors) with a packed tensor half written when the run fails', async () => {
    const recipe = { method: 'gptq', quantize: { bits: 8, groupSize: 0 } };
    await reference('gptq', quantize, options(recipe));
    const o = options(recipe);
    let tearing = true;
    await assert.rejects(
      quantize({
        ...o,
        testHook: (p) => {
          if (tearing && p.at === 'write' && p.block === 3 && p.name.endsWith('up_proj')) {
            tearing = false;
            throw new AbortError('stopped inside a staged write');
          }
        },
      }),
      /stopped inside a staged write/,
    );
    await assertResumesToReference(quantize, o, 'gptq', 3);
  });

  it('the CLI refuses --resume with a changed recipe (exit 1, naming the kept run) and resumes with the same one', async () => {
    await reference('sparsegpt', prune, options(SPARSEGPT));
    const o = options(SPARSEGPT);
    await interruptAt(prune, o, (p) => p.at === 'linear' && p.block === 1);
    const { CLI } = await import('./helpers.js');
    const resume = (recipe: Record<string, unknown>) => {
      const recipeFile = join(work, `recipe-${++counter}.json`);
      writeFileSync(recipeFile, JSON.stringify(recipe));
      // --calib with the text the library run tokenized: the same windows, so only the recipe can differ.
      return spawnSync(process.execPath, [CLI, 'prune', '--model', stories(), '--recipe', recipeFile, '--calib', calibText, '--nsamples', '24', '--seq-len', '128', '--seed', '5', '--out', o.out, '--resume', '--json'], { encoding: 'utf8' });
    };
    const changed = resume({ ...SPARSEGPT, sparsity: 0.7 });
    assert.equal(changed.status, 1);
    assert.match(changed.stderr, /the interrupted run at .*\.sparq-partial used a different model, recipe or calibration/);
    const same = resume(SPARSEGPT);
    assert.equal(same.status, 0, same.stderr);
    assert.equal(JSON.parse(same.stdout).resumed_at_block, 1);
    assert.deepEqual(files(o.out), files(references.get('sparsegpt')!.out));
  });
});

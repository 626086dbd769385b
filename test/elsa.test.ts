// Elsa and Elsa-L (lib/compress/elsa.ts, elsa-state.ts, lib/pipeline/model-scope.ts): the ADMM iteration
// against a plain float64 re-implementation of the algorithm box, exact patterns in the written folder,
// resume equal to an uninterrupted run, the storage formats of Elsa-L, and every refusal.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lossAndGradients, makeBatch } from '../lib/autograd/decoder.js';
import { moments, storedTensor } from '../lib/compress/elsa-state.js';
import { decodeE4M3, encodeE4M3 } from '../lib/tensor/fp8.js';
import { elsa, elsaWindows, ELSA_DEFAULTS, type ElsaOptions } from '../lib/compress/elsa.js';
import type { ModelRequest } from '../lib/compress/method.js';
import { keptCount, parsePattern, type SparsityPattern } from '../lib/compress/pattern.js';
import { AbortError, AllocationError, InvalidArgumentError, NonFiniteError } from '../lib/errors.js';
import { DenseFolder } from '../lib/export/dense-folder.js';
import { Checkpoint } from '../lib/io/checkpoint.js';
import { DecoderModel } from '../lib/models/decoder.js';
import { prune, type PruneOptions } from '../lib/pipeline/prune.js';
import { parseRecipe } from '../lib/pipeline/recipe.js';
import { Tensor } from '../lib/tensor/tensor.js';
import { assertSchema, fixturePath, rng, sharedDir } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'sparq-elsa-'));
let counter = 0;
const outDir = (label: string) => join(work, `${label}-${++counter}`);
after(() => rmSync(work, { recursive: true, force: true }));

/** Keeps the pattern's largest scores (ties to the lower index), float64: P_S of the algorithm box. */
function projectRef(values: Float64Array, scores: Float64Array, shape: readonly number[], pattern: SparsityPattern): Float64Array {
  const out = new Float64Array(values.length);
  const [rows, cols] = shape;
  const keepTop = (indices: number[], k: number) => {
    indices.sort((a, b) => scores[b] - scores[a] || a - b);
    for (const i of indices.slice(0, k)) out[i] = values[i];
  };
  if (pattern.kind === 'nm') {
    for (let r = 0; r < rows; ++r) for (let g = 0; g < cols; g += pattern.m) keepTop(Array.from({ length: pattern.m }, (_, j) => r * cols + g + j), pattern.n);
  } else {
    keepTop(Array.from({ length: values.length }, (_, i) => i), keptCount(pattern, values.length));
  }
  return out;
}

/** The algorithm box of elsa.ts in float64 (gradients from sparq's tape at the rounded weights). */
async function elsaReference(model: DecoderModel, start: Map<string, Tensor>, linears: string[], pattern: SparsityPattern, tokens: Int32Array, o: ElsaOptions, seed: number) {
  const x = new Map<string, Float64Array>([...start].map(([k, t]) => [k, Float64Array.from(t.data as Float32Array)]));
  const m = new Map([...x].map(([k, a]) => [k, new Float64Array(a.length)]));
  const v = new Map([...x].map(([k, a]) => [k, new Float64Array(a.length)]));
  const shape = (k: string) => start.get(k)!.shape;
  const square = (a: Float64Array) => a.map((e) => e * e);
  const z = new Map(linears.map((k) => [k, projectRef(x.get(k)!, square(x.get(k)!), shape(k), pattern)]));
  const u = new Map(linears.map((k) => [k, new Float64Array(x.get(k)!.length)]));
  for (let t = 1; t <= o.steps; ++t) {
    const f32 = new Map([...x].map(([k, a]) => [k, Tensor.fromTypedArray(Float32Array.from(a), shape(k))]));
    const { gradients } = await lossAndGradients(model, f32, makeBatch(elsaWindows(tokens, o.batch, o.seqLen, seed, t)));
    const g = new Map([...gradients].map(([k, t]) => [k, Float64Array.from(t.data as Float32Array)]));
    let squares = 0;
    for (const a of g.values()) for (const e of a) squares += e * e;
    const factor = Math.min(1, o.gradClip / (Math.sqrt(squares) + 1e-6));
    for (const a of g.values()) for (let i = 0; i < a.length; ++i) a[i] *= factor;
    for (const k of linears) {
      const [gk, xk, zk, uk] = [g.get(k)!, x.get(k)!, z.get(k)!, u.get(k)!];
      for (let i = 0; i < gk.length; ++i) gk[i] += o.lambda * (xk[i] - zk[i] + uk[i]);
    }
    for (const [k, xk] of x) {
      const [gk, mk, vk] = [g.get(k)!, m.get(k)!, v.get(k)!];
      for (let i = 0; i < xk.length; ++i) {
        mk[i] = o.beta1 * mk[i] + (1 - o.beta1) * gk[i];
        vk[i] = o.beta2 * vk[i] + (1 - o.beta2) * gk[i] * gk[i];
        xk[i] -= (o.lr * (mk[i] / (1 - o.beta1 ** t))) / (Math.sqrt(vk[i] / (1 - o.beta2 ** t)) + o.eps);
      }
    }
    if (t % o.interval === 0 || t === o.steps) {
      for (const k of linears) {
        const [xk, uk] = [x.get(k)!, u.get(k)!];
        const source = xk.map((e, i) => e + uk[i]);
        const scores = o.projection === 'objective' ? source.map((e, i) => v.get(k)![i] * e * e) : square(source);
        const zk = projectRef(source, scores, shape(k), pattern);
        for (let i = 0; i < uk.length; ++i) uk[i] = source[i] - zk[i];
        z.set(k, zk);
      }
    }
  }
  for (const k of linears) {
    const xk = x.get(k)!;
    const scores = o.projection === 'objective' ? xk.map((e, i) => v.get(k)![i] * e * e) : square(xk);
    x.set(k, projectRef(xk, scores, shape(k), pattern));
  }
  return x;
}

async function runDirect(model: DecoderModel, pattern: SparsityPattern, tokens: Int32Array, o: ElsaOptions) {
  const parameters = new Map<string, Tensor>();
  for (const name of model.checkpoint.names()) parameters.set(name, await model.checkpoint.read(name, { dtype: 'f32' }));
  const start = new Map([...parameters].map(([k, t]) => [k, t.clone()]));
  const linears = model.linearNames().map((weight) => ({ name: weight.replace(/\.weight$/, ''), weight, pattern }));
  const request: ModelRequest<ElsaOptions> = { model, parameters, linears, tokens, seed: 3, options: o, saveCheckpoint: async () => {} };
  const result = await elsa.compressModel!(request);
  return { parameters, start, linears: linears.map((l) => l.weight), result };
}

describe('elsa', () => {
  const stories = () => fixturePath('stories260K');
  const calib = () => join(sharedDir(), 'data', 'tinystories_calib.txt');
  const small = { steps: 4, batch: 2, seqLen: 33, interval: 2 };
  const options = (sparsity: string, extra: Record<string, unknown> = {}): PruneOptions => ({
    model: stories(),
    out: outDir('elsa'),
    recipe: parseRecipe({ method: 'elsa', sparsity, options: { ...small, ...extra } }, 'test'),
    calibrationFile: calib(),
  });

  it('follows the algorithm box: clipped gradient + λ(x − z + u), Adam, z/u every interval, hard projection (vs float64)', async function () {
    this.timeout(60_000);
    const model = await DecoderModel.open(fixturePath('tiny-llama'));
    try {
      const random = rng(5);
      const tokens = Int32Array.from({ length: 400 }, () => Math.floor(random() * 128));
      for (const [pattern, projection] of [
        [parsePattern('0.7', 'p'), 'magnitude'],
        [parsePattern('2:4', 'p'), 'objective'],
      ] as const) {
        // lr large enough that masks move; clip 0.5 so the clipping is exercised.
        const o: ElsaOptions = { ...ELSA_DEFAULTS, steps: 3, batch: 2, seqLen: 17, interval: 2, lr: 5e-3, lambda: 0.5, lambdaFinal: 0.5, gradClip: 0.5, projection };
        const { parameters, start, linears, result } = await runDirect(model, pattern, tokens, o);
        const reference = await elsaReference(model, start, linears, pattern, tokens, o, 3);
        assert.equal(result.changed.length, parameters.size);
        for (const [name, t] of parameters) {
          const got = t.data as Float32Array;
          const want = reference.get(name)!;
          let scale = 0;
          for (const e of want) scale = Math.max(scale, Math.abs(e));
          // f32 Adam against float64 over 3 steps: rounding of ~1e-7 relative per op, amplified where
          // g/(|g| + ε) is sensitive; 1e-4 of the tensor's largest entry bounds both. Masks must agree exactly.
          for (let i = 0; i < got.length; ++i) {
            assert.ok(Math.abs(got[i] - want[i]) <= 1e-4 * scale, `${projection} ${name}[${i}]: ${got[i]} vs ${want[i]}`);
            if (linears.includes(name)) assert.equal(got[i] === 0, want[i] === 0, `${projection} ${name}[${i}] support`);
          }
        }
        const log = result.details.log as { step: number; violation: number }[];
        assert.deepEqual(log.map((e) => e.step), [2, 3]);
        assert.ok(log.every((e) => e.violation > 0 && e.violation < 1));
      }
    } finally {
      await model.close();
    }
  });

  it('writes exactly the pattern into every linear and reports budget, violation and the per-interval log', async function () {
    this.timeout(120_000);
    for (const sparsity of ['0.8', '2:4']) {
      const o = options(sparsity);
      const lines: string[] = [];
      const report = await prune({ ...o, onProgress: (p) => (p.line ? lines.push(p.line) : undefined) });
      assert.equal(report.linears.length, 35);
      for (const l of report.linears) assert.ok(sparsity === '2:4' ? l.sparsity === 0.5 : Math.abs(l.sparsity - 0.8) < 1e-3, `${l.name} ${l.sparsity}`);
      const output = await Checkpoint.open(o.out);
      try {
        for (const l of report.linears) {
          const w = (await output.read(`${l.name}.weight`, { dtype: 'f32' })).data as Float32Array;
          if (sparsity === '2:4') for (let g = 0; g < w.length; g += 4) assert.equal([0, 1, 2, 3].filter((j) => w[g + j] !== 0).length, 2, `${l.name} group ${g}`);
          else assert.equal(w.filter((e) => e === 0).length, w.length - keptCount({ kind: 'unstructured', sparsity: 0.8 }, w.length), l.name);
        }
      } finally {
        await output.close();
      }
      const t = report.training as { steps: number; tokensSeen: number; seconds: number; log: unknown[]; textTokens: number; passes: number };
      assert.equal(t.steps, 4);
      assert.equal(t.tokensSeen, 4 * 2 * 32);
      assert.ok(t.textTokens > 10_000 && Math.abs(t.passes - (4 * 2 * 33) / t.textTokens) < 1e-12, `text ${t.textTokens} tokens, ${t.passes} passes`);
      assert.ok(t.seconds > 0);
      assert.equal(t.log.length, 2);
      assert.equal(lines.length, 2);
      assert.match(lines[0], /step 2\/4: loss \d+\.\d+, ‖x − z‖\/‖x‖ [\d.e+-]+, λ 0\.5/);
      const config = JSON.parse(readFileSync(join(o.out, 'config.json'), 'utf8'));
      assert.equal(config.sparq.training.tokensSeen, 256);
      assert.ok(!readdirSync(o.out).some((f) => f.startsWith('sparq-method-state')), 'no checkpoint left in the output');
    }
    // A text shorter than what the run reads: a note before the first step, and passes > 1 in the report.
    const lines: string[] = [];
    const short = await prune({ ...options('0.8'), calibrationFile: undefined, calibrationTokens: Int32Array.from({ length: 100 }, (_, i) => (i * 37) % 512), onProgress: (p) => (p.line ? lines.push(p.line) : undefined) });
    assert.match(lines[0], /^note: the training text has 100 tokens and this run reads 264 \(2\.6 passes\)/);
    assert.equal((short.training as { passes: number }).passes, 2.64);
  });

  it('starts from any model: warm-started from a SparseGPT-pruned folder, x starts on S and the first violation is far smaller', async function () {
    this.timeout(120_000);
    const pruned = outDir('sparsegpt');
    await prune({ model: stories(), out: pruned, recipe: parseRecipe({ method: 'sparsegpt', sparsity: 0.8 }, 'r'), calibrationFile: calib(), nsamples: 8, seqLen: 64 });
    const fromDense = await prune(options('0.8'));
    const warm = await prune({ ...options('0.8'), model: pruned });
    const first = (r: typeof warm) => (r.training as { log: { violation: number }[] }).log[0].violation;
    assert.ok(first(warm) < 0.5 * first(fromDense), `warm ${first(warm)} vs dense ${first(fromDense)}`);
    for (const l of warm.linears) assert.ok(Math.abs(l.sparsity - 0.8) < 1e-3, l.name);
  });

  it('resumes from its last interval checkpoint (x, z, u, Adam state) with the same bytes as an uninterrupted run, also for Elsa-L', async function () {
    this.timeout(180_000);
    for (const extra of [{}, { splitStorage: 'fp8', momentBits: 8 }]) {
      const whole = options('0.7', { ...extra, steps: 6 });
      await prune(whole);
      const interrupted = options('0.7', { ...extra, steps: 6 });
      const controller = new AbortController();
      await assert.rejects(prune({ ...interrupted, signal: controller.signal, onProgress: (p) => (p.step === 5 ? controller.abort() : undefined) }), AbortError);
      assert.ok(!existsSync(interrupted.out), 'nothing at --out after an interruption');
      assert.ok(readdirSync(DenseFolder.stagingPath(interrupted.out)).some((f) => f.startsWith('sparq-method-state')), 'a checkpoint is kept');
      const report = await prune({ ...interrupted, resume: true });
      assert.equal((report.training as { resumedAtStep: number }).resumedAtStep, 4);
      const hash = (dir: string) => createHash('sha256').update(readFileSync(join(dir, 'model.safetensors'))).digest('hex');
      assert.equal(hash(interrupted.out), hash(whole.out), `resumed ${JSON.stringify(extra)}`);
    }
  });

  it('Elsa-L stores z, u in bf16 or FP8 E4M3 and Adam moments in 8 bits, round-tripping checkpoints exactly', () => {
    // Every E4M3 code decodes and encodes back to itself (NaN codes aside); midpoints go to the even code.
    for (let code = 0; code < 256; ++code) {
      if ((code & 0x7f) === 0x7f) continue;
      const value = decodeE4M3(code);
      assert.equal(encodeE4M3(value), code === 0x80 ? 0x80 : code, `code ${code} (${value})`);
    }
    assert.equal(decodeE4M3(encodeE4M3(448)), 448);
    assert.equal(decodeE4M3(encodeE4M3(1e6)), 448, 'saturates');
    assert.equal(encodeE4M3((decodeE4M3(0x38) + decodeE4M3(0x39)) / 2), 0x38, 'tie to even');
    assert.equal(encodeE4M3((decodeE4M3(0x39) + decodeE4M3(0x3a)) / 2), 0x3a, 'tie to even');
    const random = rng(9);
    const values = Float32Array.from({ length: 1000 }, () => (random() - 0.5) * 3);
    const t = Tensor.fromTypedArray(values, [10, 100]);
    for (const [storage, relative] of [
      ['bf16', 2 ** -8],
      ['fp8', 2 ** -4],
    ] as const) {
      const store = storedTensor(storage, t);
      const back = Float32Array.from(store.read('a').data as Float32Array);
      let max = 0;
      for (const e of values) max = Math.max(max, Math.abs(e));
      // Round to nearest: half a unit in the last place of 8 (bf16) or 4 (E4M3) significant bits, and E4M3's subnormal step near 0.
      for (let i = 0; i < values.length; ++i) assert.ok(Math.abs(back[i] - values[i]) <= relative * Math.abs(values[i]) + (max / 448) * 2 ** -10, `${storage} ${values[i]} → ${back[i]}`);
      const copy = storedTensor(storage, Tensor.zeros([10, 100]));
      const saved = new Map(store.tensors('z').map(([k, t]) => [k, t.clone()] as const));
      copy.restore((name) => saved.get(name)!, 'z');
      assert.deepEqual(Float32Array.from(copy.read('b').data as Float32Array), back);
    }
  });

  it('8-bit moments never decode v below its value, stay finite over gradients spanning six orders of magnitude, and continue exactly from a checkpoint', async () => {
    const random = rng(11);
    const n = 700; // not a multiple of the 256-entry block
    const param = Tensor.fromTypedArray(Float32Array.from({ length: n }, () => random() - 0.5));
    const exact = { p: param.clone(), m: new Float64Array(n), v: new Float64Array(n) };
    const eight = moments(8, [n]);
    const settings = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };
    for (let step = 1; step <= 5; ++step) {
      // Gradients spanning six orders of magnitude, some exactly zero (rows a batch never reaches).
      const g = Float32Array.from({ length: n }, (_, i) => (i % 7 === 0 ? 0 : (random() - 0.5) * 10 ** -(i % 6)));
      for (let i = 0; i < n; ++i) {
        exact.m[i] = 0.9 * exact.m[i] + 0.1 * g[i];
        exact.v[i] = 0.999 * exact.v[i] + 0.001 * g[i] * g[i];
      }
      await eight.step(param, Tensor.fromTypedArray(g), step, settings);
      const v = eight.secondMoment().data as Float32Array;
      for (let i = 0; i < n; ++i) assert.ok(v[i] >= exact.v[i] * (1 - 1e-6), `v[${i}] ${v[i]} < ${exact.v[i]}`);
    }
    // No step larger than a plain Adam step can take (lr · |m̂|/√v̂ ≤ lr · 1/√(1−β2) bounds both).
    const moved = param.data as Float32Array;
    assert.ok(moved.every((e) => Number.isFinite(e)));
    // A restored copy takes the next step exactly as the original does (m and v both restored).
    const saved = new Map(eight.tensors('adam').map(([k, t]) => [k, t.clone()] as const)); // as a checkpoint file would hold them
    const copy = moments(8, [n]);
    copy.restore((name) => saved.get(name)!, 'adam');
    const g = Tensor.fromTypedArray(Float32Array.from({ length: n }, () => random() - 0.5));
    const p1 = param.clone();
    const p2 = param.clone();
    await eight.step(p1, g, 6, settings);
    const v1 = Float32Array.from(eight.secondMoment().data as Float32Array);
    await copy.step(p2, g, 6, settings);
    assert.deepEqual(p2.data, p1.data);
    assert.deepEqual(Float32Array.from(copy.secondMoment().data as Float32Array), v1);
  });

  it('refuses λ ≤ 0, interval < 1, sparsity outside (0, 1), an N:M that does not fit, and a model too large for memory', async () => {
    assert.throws(() => parseRecipe({ method: 'elsa', sparsity: 0.5, options: { lambda: 0 } }, 'r'), /lambda: must be > 0/);
    assert.throws(() => parseRecipe({ method: 'elsa', sparsity: 0.5, options: { lambda: -1 } }, 'r'), /lambda: must be > 0/);
    assert.throws(() => parseRecipe({ method: 'elsa', sparsity: 0.5, options: { interval: 0 } }, 'r'), /interval/);
    assert.throws(() => parseRecipe({ method: 'elsa', sparsity: 1.5 }, 'r'), /strictly between 0 and 1/);
    assert.throws(() => parseRecipe({ method: 'elsa', sparsity: 0 }, 'r'), /strictly between 0 and 1/);
    assert.throws(() => parseRecipe({ method: 'elsa', sparsity: 0.5, options: { projection: 'random' } }, 'r'), /projection/);
    // stories260K's down_proj has 172 inputs: 3:8 does not fit.
    await assert.rejects(prune(options('3:8')), (e: Error) => e instanceof InvalidArgumentError && /down_proj.*172.*multiple of 8/.test(e.message));
    const tooBig = options('0.5', { memoryLimit: 1e6 });
    await assert.rejects(prune(tooBig), (e: Error) => e instanceof AllocationError && /needs about [\d.]+ MiB \([\d.]+ copies of the [\d.]+ MiB of weights/.test(e.message));
    await assert.rejects(prune({ ...options('0.5'), recipe: parseRecipe({ stages: [{ method: 'elsa', sparsity: 0.5, targets: ['*.mlp.*'] }, { method: 'magnitude', sparsity: 0.5 }] }, 'r') }), /every compressed linear in one stage/);
  });

  it('stops when the loss turns NaN, naming the step, and writes nothing', async function () {
    this.timeout(60_000);
    const o = options('0.5', { lr: 1e30, gradClip: 0 });
    await assert.rejects(prune(o), (e: Error) => e instanceof NonFiniteError && /loss became NaN at step \d+ of 4; nothing was written/.test(e.message));
    assert.ok(!existsSync(o.out));
    assert.ok(!existsSync(DenseFolder.stagingPath(o.out)), 'no staging folder kept');
  });

  it('sparq prune --method elsa takes --steps/--batch/--lr/--lambda/--interval, prints one JSON line, and refuses bad flags', function () {
    this.timeout(120_000);
    const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'cli', 'main.js');
    const out = outDir('cli');
    const base = ['prune', '--model', stories(), '--method', 'elsa', '--sparsity', '0.9', '--calib', calib(), '--seq-len', '33', '--out', out];
    const run = spawnSync(process.execPath, [cli, ...base, '--steps', '2', '--batch', '2', '--lr', '1e-3', '--lambda', '0.5', '--interval', '1', '--json'], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const json = JSON.parse(run.stdout.trim().split('\n').pop()!);
    assertSchema('prune', json);
    assert.equal(json.training.steps, 2);
    assert.equal(json.training.tokensSeen, 2 * 2 * 32);
    assert.ok(json.training.finalViolation > 0);
    assert.match(run.stderr, /step 1\/2: loss/);
    const bad = spawnSync(process.execPath, [cli, ...base, '--lambda', '0', '--overwrite'], { encoding: 'utf8' });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /lambda: must be > 0/);
    const wrong = spawnSync(process.execPath, [cli, ...base.map((a) => (a === 'elsa' ? 'magnitude' : a)), '--steps', '5', '--overwrite'], { encoding: 'utf8' });
    assert.notEqual(wrong.status, 0);
    assert.match(wrong.stderr, /magnitude has no option 'steps'/);
  });
});

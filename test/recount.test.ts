// The report recounted from the files: each linear's sparsity and the run's total from the zeros in the
// written safetensors, each reconstruction error ‖(W − Ŵ)X‖² / ‖WX‖² recomputed in float64 from the input
// and output files and calibration inputs X built here (block 0's q/k/v read RMSNorm(embeddings), which
// needs no code under test), and ALPS's conjugate-gradient refinement checked against the exact least-
// squares optimum on the support it chose, solved here row by row.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Checkpoint, loadTokenizer, parseRecipe, prune, type CompressReport } from '../lib/index.js';
import { fixturePath, sharedDir } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'sparq-recount-'));
after(() => rmSync(work, { recursive: true, force: true }));
const stories = () => fixturePath('stories260K');
const QKV = ['q_proj', 'k_proj', 'v_proj'].map((p) => `model.layers.0.self_attn.${p}`);

async function read(dir: string, name: string): Promise<Float64Array> {
  const checkpoint = await Checkpoint.open(dir);
  try {
    return Float64Array.from((await checkpoint.read(name, { dtype: 'f32' })).data as Float32Array);
  } finally {
    await checkpoint.close();
  }
}

/** H = Σ_t x_t x_tᵀ over every calibration token, x_t = RMSNorm(embedding of t) — block 0's q/k/v input. */
async function blockZeroHessian(windows: Int32Array[]): Promise<{ h: Float64Array; d: number }> {
  const config = JSON.parse(readFileSync(join(stories(), 'config.json'), 'utf8'));
  const d = config.hidden_size as number;
  const embeddings = await read(stories(), 'model.embed_tokens.weight');
  const gain = await read(stories(), 'model.layers.0.input_layernorm.weight');
  const h = new Float64Array(d * d);
  const x = new Float64Array(d);
  for (const window of windows) {
    for (const token of window) {
      let squares = 0;
      for (let i = 0; i < d; ++i) squares += embeddings[token * d + i] ** 2;
      const scale = 1 / Math.sqrt(squares / d + config.rms_norm_eps);
      for (let i = 0; i < d; ++i) x[i] = embeddings[token * d + i] * scale * gain[i];
      for (let i = 0; i < d; ++i) for (let j = 0; j < d; ++j) h[i * d + j] += x[i] * x[j];
    }
  }
  return { h, d };
}

/** Σ_rows a_r H b_rᵀ for row-major [rows, d] matrices. */
function quadratic(a: Float64Array, b: Float64Array, h: Float64Array, d: number): number {
  let sum = 0;
  for (let r = 0; r < a.length / d; ++r) {
    for (let i = 0; i < d; ++i) {
      let hb = 0;
      for (let j = 0; j < d; ++j) hb += h[i * d + j] * b[r * d + j];
      sum += a[r * d + i] * hb;
    }
  }
  return sum;
}

const relativeError = (w: Float64Array, pruned: Float64Array, h: Float64Array, d: number) => {
  const delta = w.map((v, i) => v - pruned[i]);
  return quadratic(delta, delta, h, d) / quadratic(w, w, h, d);
};

/** The best weights on `pruned`'s support: per row, minimise (w − ŵ)H(w − ŵ)ᵀ over ŵ_S, i.e. H_SS ŵ_S = (wH)_S. */
function optimumOnSupport(w: Float64Array, pruned: Float64Array, h: Float64Array, d: number): Float64Array {
  const out = new Float64Array(w.length);
  for (let r = 0; r < w.length / d; ++r) {
    const support = [...Array(d).keys()].filter((j) => pruned[r * d + j] !== 0);
    const n = support.length;
    const a = new Float64Array(n * (n + 1)); // [H_SS | (wH)_S], Gaussian elimination with partial pivoting
    support.forEach((i, p) => {
      support.forEach((j, q) => (a[p * (n + 1) + q] = h[i * d + j]));
      let rhs = 0;
      for (let k = 0; k < d; ++k) rhs += w[r * d + k] * h[k * d + i];
      a[p * (n + 1) + n] = rhs;
    });
    for (let c = 0; c < n; ++c) {
      let pivot = c;
      for (let p = c + 1; p < n; ++p) if (Math.abs(a[p * (n + 1) + c]) > Math.abs(a[pivot * (n + 1) + c])) pivot = p;
      for (let q = 0; q <= n; ++q) [a[c * (n + 1) + q], a[pivot * (n + 1) + q]] = [a[pivot * (n + 1) + q], a[c * (n + 1) + q]];
      for (let p = c + 1; p < n; ++p) {
        const f = a[p * (n + 1) + c] / a[c * (n + 1) + c];
        for (let q = c; q <= n; ++q) a[p * (n + 1) + q] -= f * a[c * (n + 1) + q];
      }
    }
    for (let c = n - 1; c >= 0; --c) {
      let v = a[c * (n + 1) + n];
      for (let q = c + 1; q < n; ++q) v -= a[c * (n + 1) + q] * out[r * d + support[q]];
      out[r * d + support[c]] = v / a[c * (n + 1) + c];
    }
  }
  return out;
}

describe('reports recounted from the files', function () {
  this.timeout(300_000);
  let windows: Int32Array[];
  let hessian: { h: Float64Array; d: number };
  const runs: Record<string, { out: string; report: CompressReport }> = {};

  before(async () => {
    const text = readFileSync(join(sharedDir(), 'data', 'tinystories_calib.txt'), 'utf8').slice(0, 16384);
    const tokens = (await loadTokenizer(stories())).encode(text);
    windows = Array.from({ length: 16 }, (_, w) => tokens.slice(w * 64, (w + 1) * 64));
    hessian = await blockZeroHessian(windows);
    for (const method of ['alps', 'sparsegpt', 'wanda']) {
      const out = join(work, method);
      const report = await prune({ model: stories(), out, recipe: parseRecipe({ method, sparsity: 0.7, targets: ['re:model\\.layers\\.0\\.self_attn\\.[qkv]_proj'] }), calibrationWindows: windows, measureError: true });
      runs[method] = { out, report };
    }
  });

  it('sparsity: each linear\'s and the total, from the zeros in the written file', async () => {
    for (const [method, { out, report }] of Object.entries(runs)) {
      let zeros = 0;
      let total = 0;
      for (const name of QKV) {
        const w = await read(out, `${name}.weight`);
        const z = w.filter((v) => v === 0).length;
        // Wanda compares weights within an output row (its paper's choice), so it rounds 70% per row of 64.
        const expected = method === 'wanda' ? (w.length / 64) * Math.round(0.7 * 64) : Math.round(0.7 * w.length);
        assert.equal(z, expected, `${method} ${name}: zeros in the file`);
        assert.equal(report.linears.find((l) => l.name === name)!.sparsity, z / w.length, name);
        zeros += z;
        total += w.length;
      }
      assert.equal(report.totals.sparsity, zeros / total);
    }
  });

  it('reconstruction errors: the reported ‖(W − Ŵ)X‖²/‖WX‖² equals the float64 recomputation from the files', async () => {
    const { h, d } = hessian;
    for (const [method, { out, report }] of Object.entries(runs)) {
      for (const name of QKV) {
        const expected = relativeError(await read(stories(), `${name}.weight`), await read(out, `${name}.weight`), h, d);
        const reported = report.linears.find((l) => l.name === name)!.relativeError!;
        // The report computes through an f32 Hessian and f32 GEMMs: 1.5e-7 relative at most here; 2e-6 allows 10×.
        assert.ok(Math.abs(reported / expected - 1) < 2e-6, `${method} ${name}: reported ${reported}, recomputed ${expected}`);
      }
    }
  });

  it('ALPS\'s refined weights sit at the least-squares optimum on their support, below SparseGPT and Wanda', async () => {
    const { h, d } = hessian;
    for (const name of QKV) {
      const w = await read(stories(), `${name}.weight`);
      const alps = await read(runs.alps.out, `${name}.weight`);
      const optimum = optimumOnSupport(w, alps, h, d);
      const [atFile, atOptimum] = [relativeError(w, alps, h, d), relativeError(w, optimum, h, d)];
      // CG in f32 from ALPS's ADMM point ends 1.6e-4 (relative) above the exact optimum on the same
      // support at most here; 2e-3 allows 10×. Without the refinement the gap is orders larger (below).
      assert.ok(atFile <= atOptimum * (1 + 2e-3), `${name}: file ${atFile}, optimum on its support ${atOptimum}`);
      for (const other of ['sparsegpt', 'wanda']) {
        assert.ok(atFile < relativeError(w, await read(runs[other].out, `${name}.weight`), h, d), `${name}: alps not below ${other}`);
      }
      // And the refinement was needed: zeroing the pruned weights of W alone (no update) is worse.
      assert.ok(atFile < relativeError(w, w.map((v, i) => (alps[i] === 0 ? 0 : v)), h, d));
    }
  });
});

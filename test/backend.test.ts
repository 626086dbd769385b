// Backend loading and the CUDA backend against the CPU reference. Without a built CUDA addon and a GPU
// the comparison is skipped (and says why); the loader's report is checked either way.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  applyMask,
  backendInfo,
  BackendUnavailableError,
  cholesky,
  choleskyInverse,
  denseWeight,
  gemm,
  InvalidFileError,
  isAvailable,
  loadAttempts,
  nmMask,
  pack24,
  pack24Int4,
  packBsr,
  packBsrInt4,
  packedLinear,
  packInt4,
  setThreads,
  supportsOp,
  syrk,
  Tensor,
  thresholdMask,
  topkMask,
  triangularSolve,
  type PackedWeight,
} from '../lib/index.js';
import { backend } from '../lib/tensor/native.js';
import { assertClose, cudaSkipReason, poison, randomF32, rng } from './helpers.js';

/** A packed weight with every tensor (and its outliers') moved to the device. */
function toDevice(w: PackedWeight): PackedWeight {
  const moved: Record<string, unknown> = { ...w };
  for (const [key, value] of Object.entries(w)) if (value instanceof Tensor) moved[key] = value.cuda();
  if (w.outliers) moved.outliers = toDevice(w.outliers);
  return moved as unknown as PackedWeight;
}

/** w [n, k] with each group of 4 inputs keeping at most 2 entries (2:4), or whole blocks zeroed (BSR). */
function sparse24(w: Float32Array, n: number, k: number, random: () => number): Float32Array {
  for (let r = 0; r < n; r++) {
    for (let g = 0; g < k; g += 4) {
      const order = [0, 1, 2, 3].sort(() => random() - 0.5);
      for (const p of order.slice(2)) if (g + p < k) w[r * k + g + p] = 0;
    }
  }
  return w;
}
function blockSparse(w: Float32Array, n: number, k: number, blockSize: number, random: () => number): Float32Array {
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < k; c += blockSize) if (random() < 0.5) w.fill(0, r * k + c, r * k + Math.min(k, c + blockSize));
  }
  return w;
}
function codesLike(pattern: Float32Array, random: () => number): Int8Array {
  return Int8Array.from(pattern, (v) => (v === 0 ? 0 : Math.floor(random() * 16) - 8));
}
function scalesFor(n: number, groups: number, random: () => number): Tensor {
  return Tensor.fromTypedArray(Float32Array.from({ length: n * groups }, () => 0.01 + random() * 0.1), [n, groups]);
}

describe('backends', () => {
  it('loads the CPU addon and describes it', () => {
    const info = backendInfo('cpu');
    assert.equal(info.backend, 'cpu');
    assert.ok(info.threads >= 1);
    assert.ok(info.kernelVariants.includes('scalar'));
    assert.ok(loadAttempts().some((a) => a.backend === 'cpu' && a.ok));
  });

  it('lists the op table: the CPU backend has every op, each exported sync and async, with argument errors named', () => {
    const info = backendInfo('cpu');
    const addon = backend('cpu');
    assert.ok(info.ops.length >= 38, `only ${info.ops.length} ops`);
    assert.equal(new Set(info.ops).size, info.ops.length);
    for (const op of ['gemm', 'cholesky', 'topkMask', 'quantizeRtn', 'attention', 'adamwStep']) assert.ok(info.ops.includes(op), op);
    for (const op of info.ops) {
      assert.equal(typeof addon[op], 'function', op);
      assert.equal(typeof addon[`${op}Async`], 'function', `${op}Async`);
      assert.ok(supportsOp(op, 'cpu'), op);
      // Too few arguments: the first one the row lists is named.
      assert.throws(() => (addon[op] as () => unknown)(), /argument '\w+'/, op);
    }
    assert.equal(supportsOp('noSuchOp', 'cpu'), false);
  });

  it('resizes the shared thread pool and still computes the same result', () => {
    const a = Tensor.fromTypedArray(randomF32(300 * 40, rng(1)), [300, 40]);
    const before = topkMask(a, 7).data;
    const threads = backendInfo('cpu').threads;
    setThreads(1);
    try {
      assert.equal(backendInfo('cpu').threads, 1);
      assert.deepEqual(topkMask(a, 7).data, before);
    } finally {
      setThreads(threads);
    }
  });

  it('explains a missing CUDA backend with the fix', function () {
    if (isAvailable('cuda')) this.skip();
    assert.throws(() => backend('cuda'), (e: unknown) => e instanceof BackendUnavailableError && /build:cuda|SPARQ_CUDA/.test(e.message));
    assert.throws(() => Tensor.zeros([2]).cuda(), BackendUnavailableError);
  });

  it('fails the CUDA tests (never skips them) when a built addon does not load, and skips when none is built', function () {
    this.timeout(60_000);
    const helpers = fileURLToPath(new URL('./helpers.js', import.meta.url));
    const verdict = (addon: string) => {
      const script = `const { cudaSkipReason } = await import(${JSON.stringify(helpers)});
        try { console.log('skip: ' + cudaSkipReason()); } catch (e) { console.log('fail: ' + e.message); }`;
      return spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, SPARQ_CUDA_ADDON: addon, SPARQ_CUDA: '1' } }).stdout;
    };
    const dir = mkdtempSync(join(tmpdir(), 'sparq-cuda-addon-'));
    try {
      const broken = join(dir, 'sparq_cuda.node');
      writeFileSync(broken, 'not a shared library');
      assert.match(verdict(broken), /^fail: the CUDA addon is built but does not load:\n.*sparq_cuda\.node: /);
      assert.equal(verdict(join(dir, 'missing.node')), 'skip: not built\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('CUDA matches the CPU reference on random inputs', function () {
    before(function () {
      const why = cudaSkipReason(); // a built addon that fails to load fails here instead of skipping
      if (why !== undefined) {
        console.log(`      (skipped: ${why})`);
        this.skip();
      }
    });

    const random = rng(2026);
    const matrix = (r: number, c: number) => Tensor.fromTypedArray(randomF32(r * c, random), [r, c]);
    const close = (gpu: Tensor, cpu: Tensor, what: string, atol = 1e-4, rtol = 1e-4) =>
      assertClose(gpu.cpu().toFloat64Array(), cpu.toFloat64Array(), { atol, rtol }, what);

    it('gemm, syrk, cholesky, inverse and triangular solve', () => {
      for (const [m, k, n] of [[1, 1, 1], [7, 129, 33], [1000, 129, 7]]) {
        const a = matrix(m, k);
        const b = matrix(k, n);
        close(gemm(a.cuda(), b.cuda()), gemm(a, b), `gemm ${m}x${k}x${n}`, 1e-4 * Math.sqrt(k));
        close(gemm(a.cuda(), a.cuda(), { transB: true }), gemm(a, a, { transB: true }), 'gemm transB', 1e-4 * Math.sqrt(k));
        close(syrk(a.cuda()), syrk(a), 'syrk', 1e-4 * Math.sqrt(m));
      }
      // H = XᵀX/300 of a 300 × 129 normal X is well conditioned (κ ≈ 23). Both backends factor it in f32,
      // so each is within its f32 error of the exact result and they differ by at most the sum. The CPU's
      // f32 results against its own f64 ones on this H (seeds 2026, 1, 2, 3): Cholesky factor 1e-7,
      // damped inverse 7e-7 (entries up to 2.3), triangular solve 2e-6 (entries up to 5.6). The
      // tolerances are absolute, 10× twice those (the device's error taken as no larger than the CPU's;
      // unmeasured on a GPU when they were set — a run that sees more must say why before loosening them).
      const x = matrix(300, 129);
      const h = syrk(x, { alpha: 1 / 300 });
      close(cholesky(h.cuda()).factor, cholesky(h).factor, 'cholesky', 2e-6, 0);
      close(cholesky(h.cuda(), { upper: true }).factor, cholesky(h, { upper: true }).factor, 'cholesky upper', 2e-6, 0);
      close(choleskyInverse(h.cuda(), { damp: 0.01 }).inverse, choleskyInverse(h, { damp: 0.01 }).inverse, 'inverse', 1.5e-5, 0);
      const L = cholesky(h).factor;
      const rhs = matrix(129, 5);
      close(triangularSolve(L.cuda(), rhs.cuda()), triangularSolve(L, rhs), 'trsm', 4e-5, 0);
    });

    it('masks and conversions agree exactly', () => {
      for (const [rows, cols] of [[1, 8], [7, 128], [129, 1000]]) {
        const s = matrix(rows, cols);
        assert.deepEqual(topkMask(s.cuda(), Math.floor(cols / 3)).cpu().data, topkMask(s, Math.floor(cols / 3)).data);
        assert.deepEqual(nmMask(s.cuda(), 2, 4).cpu().data, nmMask(s, 2, 4).data);
        assert.deepEqual(thresholdMask(s.cuda(), 0.1).cpu().data, thresholdMask(s, 0.1).data);
        const mask = thresholdMask(s, 0);
        assert.deepEqual(applyMask(s.cuda(), mask.cuda()).cpu().data, applyMask(s, mask).data);
        for (const dtype of ['f16', 'bf16'] as const) {
          assert.deepEqual(s.cuda().to(dtype).cpu().data, s.to(dtype).data, dtype);
          assert.deepEqual(s.to(dtype).cuda().to('f32').cpu().data, s.to(dtype).to('f32').data, `${dtype} back`);
        }
      }
    });

    // Every packed format (and each dtype and block size) in odd shapes (tails past multiples of 4, 8, 32
    // and 64), batch 1 (the warp-per-row kernels), 16 and 70 (the shared-tile kernels, 70 spanning two
    // token tiles). y is poisoned with NaN so an unwritten output shows. Both sides sum k f32 products in
    // different orders, so the tolerance is absolute 1e-4·√k (the products are O(1)) plus relative 1e-4.
    it('packed linears match the CPU op: every format, batch 1, 16 and 70, poisoned outputs, outliers accumulated', async () => {
      assert.ok(supportsOp('int4Linear', 'cuda') && supportsOp('bsrInt4Linear', 'cuda'));
      assert.equal(supportsOp('pack24', 'cuda'), false, 'the converters stay on the CPU backend');
      for (const [n, k] of [[37, 67], [64, 256], [19, 390], [5, 1030]]) {
        const weights: [string, PackedWeight][] = [];
        const dense = randomF32(n * k, random);
        for (const dtype of ['f32', 'f16', 'bf16'] as const) weights.push([`dense ${dtype}`, denseWeight(Tensor.fromTypedArray(dense, [n, k]).to(dtype))]);
        const codes = Tensor.fromTypedArray(codesLike(randomF32(n * k, random), random), [n, k]);
        for (const groupSize of [32, 12, k]) {
          const groups = Math.ceil(k / groupSize);
          const zeros = Tensor.fromTypedArray(Int8Array.from({ length: n * groups }, () => Math.floor(random() * 7) - 3), [n, groups]);
          weights.push([`int4 g${groupSize}`, packInt4(codes, scalesFor(n, groups, random), groupSize)]);
          weights.push([`int4 g${groupSize} f16 scales, zeros`, packInt4(codes, scalesFor(n, groups, random).to('f16'), groupSize, zeros)]);
        }
        const pattern24 = sparse24(randomF32(n * k, random), n, k, random);
        for (const dtype of ['f32', 'f16', 'bf16'] as const) weights.push([`2:4 ${dtype}`, await pack24(Tensor.fromTypedArray(pattern24, [n, k]).to(dtype))]);
        for (const groupSize of [64, 12]) {
          const codes24 = Tensor.fromTypedArray(codesLike(pattern24, random), [n, k]);
          weights.push([`2:4+int4 g${groupSize}`, await pack24Int4(codes24, scalesFor(n, Math.ceil(k / groupSize), random).to('bf16'), groupSize)]);
        }
        for (const blockSize of [1, 8, 16, 32]) {
          const pattern = blockSparse(randomF32(n * k, random), n, k, blockSize, random);
          for (const dtype of ['f32', 'f16'] as const) weights.push([`bsr${blockSize} ${dtype}`, await packBsr(Tensor.fromTypedArray(pattern, [n, k]).to(dtype), blockSize)]);
          if (blockSize > 1) {
            const blockCodes = Tensor.fromTypedArray(codesLike(pattern, random), [n, k]);
            weights.push([`bsr-int4 ${blockSize}`, await packBsrInt4(blockCodes, scalesFor(n, Math.ceil(k / blockSize), random), blockSize)]);
          }
        }
        const outliers = await packBsr(Tensor.fromTypedArray(blockSparse(randomF32(n * k, random), n, k, 1, random), [n, k]).to('f16'), 1);
        weights.push(['int4 + CSR outliers', { ...packInt4(codes, scalesFor(n, Math.ceil(k / 32), random), 32), outliers }]);

        const bias = Tensor.fromTypedArray(randomF32(n, random));
        for (const [what, w] of weights) {
          const onDevice = toDevice(w);
          for (const t of [1, 16, 70]) {
            const x = matrix(t, k);
            const out = Tensor.fromTypedArray(poison(new Float32Array(t * n)), [t, n]).cuda();
            packedLinear(x.cuda(), onDevice, { bias: bias.cuda(), out });
            close(out, packedLinear(x, w, { bias }), `${what} [${n}, ${k}] T=${t}`, 1e-4 * Math.sqrt(k));
            close(packedLinear(x.cuda(), onDevice), packedLinear(x, w), `${what} [${n}, ${k}] T=${t} no bias`, 1e-4 * Math.sqrt(k));
          }
        }
      }
    });

    it('corrupt packed indices are InvalidFile naming the row, as on the CPU, and leave the device usable', async () => {
      const [n, k] = [6, 60];
      const throwsOnBoth = (w: PackedWeight, pattern: RegExp, what: string) => {
        // The CPU's batched path checks every row it decodes (its fused AVX-512 batch-1 kernels may skip the
        // 2:4 check); the device checks at every batch size.
        const x4 = matrix(4, k);
        assert.throws(() => packedLinear(x4, w), (e: unknown) => e instanceof InvalidFileError && pattern.test((e as Error).message), `cpu ${what}`);
        for (const t of [1, 4]) {
          const x = matrix(t, k);
          assert.throws(() => packedLinear(x.cuda(), toDevice(w)), (e: unknown) => e instanceof InvalidFileError && pattern.test((e as Error).message), `cuda ${what} T=${t}`);
        }
      };
      const w24 = await pack24(Tensor.fromTypedArray(sparse24(randomF32(n * k, random), n, k, random), [n, k]));
      (w24.meta.data as Int32Array)[3 * w24.meta.shape[1]] = 0; // row 3, group 0: positions 0 and 0
      throwsOnBoth(w24, /row 3, group 0 lists positions 0 and 0/, '2:4 repeated position');

      const bsr = await packBsr(Tensor.fromTypedArray(blockSparse(randomF32(n * k, random), n, k, 16, random), [n, k]), 16);
      const cols = bsr.blockCols.data as Int32Array;
      const ptr = bsr.rowPtr.data as Int32Array;
      const row = ptr.findIndex((p, i) => i < n && ptr[i + 1] - p >= 2);
      assert.ok(row >= 0, 'some row has two blocks');
      for (const bad of [-1, 1000, cols[ptr[row] + 1]]) {
        const saved = cols[ptr[row]];
        cols[ptr[row]] = bad;
        // (A repeated column 3 also moves the block's values past k = 60, which is reported first.)
        throwsOnBoth(bsr, new RegExp(`row ${row}: (blockCols\\[|block )`), `bsr blockCol ${bad}`);
        cols[ptr[row]] = saved;
      }
      // k = 60 leaves the last block of 16 four inputs short: a nonzero value there is corrupt.
      const tail = cols.findIndex((c) => c === 3);
      if (tail >= 0) {
        const values = bsr.values.data as Float32Array;
        const saved = values[tail * 16 + 15];
        values[tail * 16 + 15] = 1;
        throwsOnBoth(bsr, new RegExp(`block ${tail} holds a nonzero value past the last input`), 'bsr value past K');
        values[tail * 16 + 15] = saved;
      }
      const end = ptr[n];
      ptr[n] = end + 5;
      throwsOnBoth(bsr, /rowPtr ends at/, 'rowPtr end');
      ptr[n] = end;
      const second = ptr[2];
      ptr[2] = ptr[1] - 1;
      throwsOnBoth(bsr, /rowPtr decreases at row 1/, 'rowPtr decreasing');
      ptr[2] = second;
      // Nothing was read out of bounds: the device still computes.
      const x = matrix(4, k);
      close(packedLinear(x.cuda(), toDevice(bsr)), packedLinear(x, bsr), 'bsr after the corrupt cases', 1e-4 * Math.sqrt(k));
    });
  });
});

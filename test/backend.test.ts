// Backend loading and the CUDA backend against the CPU reference. Without a built CUDA addon and a GPU
// the comparison is skipped (and says why); the loader's report is checked either way.
import assert from 'node:assert/strict';
import {
  applyMask,
  backendInfo,
  BackendUnavailableError,
  cholesky,
  choleskyInverse,
  gemm,
  isAvailable,
  loadAttempts,
  nmMask,
  setThreads,
  supportsOp,
  syrk,
  Tensor,
  thresholdMask,
  topkMask,
  triangularSolve,
} from '../lib/index.js';
import { backend } from '../lib/tensor/native.js';
import { assertClose, randomF32, rng } from './helpers.js';

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

  describe('CUDA matches the CPU reference on random inputs', function () {
    before(function () {
      if (!isAvailable('cuda')) {
        console.log(`      (skipped: ${loadAttempts().filter((a) => a.backend === 'cuda').map((a) => a.error).join('; ')})`);
        this.skip();
      }
    });

    const random = rng(2026);
    const matrix = (r: number, c: number) => Tensor.fromTypedArray(randomF32(r * c, random), [r, c]);
    const close = (gpu: Tensor, cpu: Tensor, what: string, atol = 1e-4) =>
      assertClose(gpu.cpu().toFloat64Array(), cpu.toFloat64Array(), { atol, rtol: 1e-4 }, what);

    it('gemm, syrk, cholesky, inverse and triangular solve', () => {
      for (const [m, k, n] of [[1, 1, 1], [7, 129, 33], [1000, 129, 7]]) {
        const a = matrix(m, k);
        const b = matrix(k, n);
        close(gemm(a.cuda(), b.cuda()), gemm(a, b), `gemm ${m}x${k}x${n}`, 1e-4 * Math.sqrt(k));
        close(gemm(a.cuda(), a.cuda(), { transB: true }), gemm(a, a, { transB: true }), 'gemm transB', 1e-4 * Math.sqrt(k));
        close(syrk(a.cuda()), syrk(a), 'syrk', 1e-4 * Math.sqrt(m));
      }
      const x = matrix(300, 129);
      const h = syrk(x, { alpha: 1 / 300 });
      close(cholesky(h.cuda()).factor, cholesky(h).factor, 'cholesky', 1e-3);
      close(cholesky(h.cuda(), { upper: true }).factor, cholesky(h, { upper: true }).factor, 'cholesky upper', 1e-3);
      close(choleskyInverse(h.cuda(), { damp: 0.01 }).inverse, choleskyInverse(h, { damp: 0.01 }).inverse, 'inverse', 1e-2);
      const L = cholesky(h).factor;
      const rhs = matrix(129, 5);
      close(triangularSolve(L.cuda(), rhs.cuda()), triangularSolve(L, rhs), 'trsm', 1e-2);
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
  });
});

// The asynchronous path: same results as sync, AbortSignal, typed errors with the caller's stack, and
// an event loop that keeps running while long native work is under way.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  AbortError,
  backendInfo,
  choleskyInverseAsync,
  gemm,
  gemmAsync,
  HessianAccumulator,
  nmMaskAsync,
  setKernelVariant,
  ShapeMismatchError,
  Tensor,
  topkMaskAsync,
} from '../lib/index.js';
import { maxTimerLag, randomF32, rng } from './helpers.js';

function randomMatrix(rows: number, cols: number, seed: number): Tensor {
  return Tensor.fromTypedArray(randomF32(rows * cols, rng(seed)), [rows, cols]);
}

describe('async ops', () => {
  it('give the same results as the sync forms', async () => {
    const a = randomMatrix(65, 33, 1);
    const b = randomMatrix(33, 17, 2);
    assert.deepEqual((await gemmAsync(a, b)).data, gemm(a, b).data);
    const scores = randomMatrix(9, 64, 3);
    const { topkMask, nmMask } = await import('../lib/index.js');
    assert.deepEqual((await topkMaskAsync(scores, 10)).data, topkMask(scores, 10).data);
    assert.deepEqual((await nmMaskAsync(scores, 2, 4)).data, nmMask(scores, 2, 4).data);
    const h = new HessianAccumulator(33);
    await h.addAsync(a);
    assert.equal(h.count, 65);
  });

  it('reject with a typed error that carries the caller stack', async () => {
    await assert.rejects(
      async function callerFrame() {
        await gemmAsync(Tensor.zeros([2, 3]), Tensor.zeros([2, 3]));
      },
      (e: unknown) => e instanceof ShapeMismatchError && /async\.test/.test(e.stack ?? ''),
    );
    const notPd = Tensor.fromTypedArray(new Float64Array([-1, 0, 0, -1]), [2, 2]);
    await assert.rejects(choleskyInverseAsync(notPd, { maxAttempts: 1 }), (e: unknown) => (e as Error).name === 'NotPositiveDefiniteError');
  });

  it('reject with AbortError when the signal is already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(gemmAsync(randomMatrix(4, 4, 1), randomMatrix(4, 4, 2), { signal: controller.signal }), AbortError);
  });

  it('run one after another per device, and skip a queued call whose signal aborts before it starts', async () => {
    const scores = randomMatrix(4000, 1024, 7);
    const first = topkMaskAsync(scores, 100);
    const controller = new AbortController();
    const second = topkMaskAsync(scores, 100, { signal: controller.signal });
    controller.abort();
    const third = topkMaskAsync(scores, 50);
    await assert.rejects(second, AbortError);
    const [a, c] = await Promise.all([first, third]);
    assert.equal((a.data as Uint8Array).reduce((s, v) => s + v, 0), 4000 * 100);
    assert.equal((c.data as Uint8Array).reduce((s, v) => s + v, 0), 4000 * 50);
  });

  it('stop long work when the signal aborts mid-run', async () => {
    // Large row count so the kernel checks cancellation between many chunks, on the scalar reference (it
    // sorts each row): the vector kernels finish this in tens of ms, too close to the abort's own delay.
    const scores = randomMatrix(20000, 1024, 4);
    const variant = backendInfo('cpu').kernelVariant;
    setKernelVariant('scalar');
    try {
      const controller = new AbortController();
      const started = performance.now();
      const work = topkMaskAsync(scores, 100, { signal: controller.signal });
      setTimeout(() => controller.abort(), 5);
      await assert.rejects(work, (e: unknown) => e instanceof AbortError && e.name === 'AbortError');
      const aborted = performance.now() - started;
      const full = performance.now();
      await topkMaskAsync(scores, 100);
      const uninterrupted = performance.now() - full;
      assert.ok(aborted < uninterrupted, `aborted after ${aborted.toFixed(0)} ms, a full run takes ${uninterrupted.toFixed(0)} ms`);
    } finally {
      setKernelVariant(variant);
    }
  });

  it('keep the event loop responsive during seconds of native work (and sync calls would not)', async function () {
    this.timeout(120_000);
    const a = randomMatrix(1536, 1536, 5);
    const b = randomMatrix(1536, 1536, 6);
    // Calibrate: how long one product takes here, so the async run is long enough to mean something.
    const t0 = performance.now();
    gemm(a, b);
    const oneProduct = performance.now() - t0;
    const repeats = Math.max(2, Math.ceil(1000 / oneProduct));

    const asyncLag = await maxTimerLag(async () => {
      for (let i = 0; i < repeats; ++i) await gemmAsync(a, b);
    });
    // The same work called synchronously blocks the loop for at least one product: the measurement can fail.
    const syncLag = await maxTimerLag(async () => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      for (let i = 0; i < repeats; ++i) gemm(a, b);
      await new Promise((resolve) => setTimeout(resolve, 10));
    });
    assert.ok(syncLag > oneProduct * 0.8, `sync calls blocked the loop for ${syncLag.toFixed(0)} ms`);
    // Budget 50 ms as in the spec; CI machines are shared, so allow scheduling noise up to 100 ms.
    assert.ok(asyncLag < 100, `event loop lag ${asyncLag.toFixed(1)} ms during ${repeats} async products of ${oneProduct.toFixed(0)} ms`);
  });
  // Transferring an ArrayBuffer detaches it and hands its memory to the receiver; when that copy is
  // collected the memory is freed. The job holds the backing store, so the kernel never writes into
  // freed memory (before the fix: SIGSEGV in 3 of 3 runs), and the promise says what happened.
  for (const victim of ['out', 'a'] as const) {
    it(`survives the ${victim === 'out' ? 'output' : 'input'} buffer being transferred and collected mid-op, and rejects naming it`, function () {
      this.timeout(60_000);
      const index = fileURLToPath(new URL('../lib/index.js', import.meta.url));
      const script = `
        const { Tensor, gemmAsync } = await import(${JSON.stringify(index)});
        const n = 2048;
        const a = Tensor.fromTypedArray(new Float32Array(n * n).fill(1), [n, n]);
        const b = Tensor.fromTypedArray(new Float32Array(n * n).fill(1), [n, n]);
        const out = Tensor.zeros([n, n]);
        const pending = gemmAsync(a, b, { out });
        await new Promise((r) => setTimeout(r, 10));
        const victim = ${victim};
        structuredClone(victim.data.buffer, { transfer: [victim.data.buffer] });
        for (let i = 0; i < 5; ++i) { globalThis.gc(); new Float32Array(n * n).fill(3); }
        try { await pending; console.log('resolved'); } catch (e) { console.log(e.code, e.message); }`;
      const child = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' });
      assert.equal(child.signal, null, `the process died with ${child.signal}: ${child.stderr}`);
      assert.equal(child.status, 0, child.stderr);
      assert.match(child.stdout, /SPARQ_INVALID_ARGUMENT gemm: a tensor's ArrayBuffer was detached \(transferred\) while the op ran/);
    });
  }
});

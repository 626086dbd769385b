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
import { callAsync } from '../lib/tensor/native.js';
import { countLoopTurns, randomF32, rng } from './helpers.js';

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

  it('stop long work when the signal aborts mid-run: rows past the abort are never written', async () => {
    // The scalar reference sorts each row, so this takes about a second. No timer decides when to abort:
    // the test watches the output (which the kernel writes in place) and aborts once the first row is
    // written — the kernel has started — then proves it stopped: rows it never reached keep the poison.
    const rows = 20000;
    const scores = randomMatrix(rows, 1024, 4);
    const mask = Tensor.fromTypedArray(new Uint8Array(rows * 1024).fill(0xab), [rows, 1024], 'u8');
    const data = mask.data as Uint8Array;
    const variant = backendInfo('cpu').kernelVariant;
    setKernelVariant('scalar');
    try {
      const controller = new AbortController();
      const work = callAsync('cpu', 'topkMask', [...scores.nativeArgs('scores'), 100, true, ...mask.nativeArgs('mask')], controller.signal);
      let settled = false;
      work.then(
        () => (settled = true),
        () => (settled = true),
      );
      while (!settled && data[0] === 0xab) await new Promise<void>((resolve) => setImmediate(resolve));
      controller.abort();
      await assert.rejects(work, (e: unknown) => e instanceof AbortError && e.name === 'AbortError');
      assert.notEqual(data[0], 0xab, 'the abort came after the kernel had started');
      let untouched = 0;
      for (let r = 0; r < rows; ++r) if (data[r * 1024] === 0xab) untouched++;
      assert.ok(untouched > 0, 'every row was written: the kernel ran to the end instead of stopping');
    } finally {
      setKernelVariant(variant);
    }
  });

  it('keep the event loop turning while native work is in flight', async function () {
    this.timeout(120_000);
    const a = randomMatrix(1536, 1536, 5);
    const b = randomMatrix(1536, 1536, 6);
    // Structural, not timed: count event-loop turns (setImmediate callbacks) while four products are in
    // flight. An op that ran on the JavaScript thread would hand back settled promises, and awaiting them
    // never yields to the loop: zero turns. Off-thread, the loop turns many times per product.
    const { turns } = await countLoopTurns(async () => {
      for (let i = 0; i < 4; ++i) await gemmAsync(a, b);
    });
    assert.ok(turns >= 8, `the event loop turned only ${turns} times during four async 1536² products`);
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

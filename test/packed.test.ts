// Packed weight formats: exact round trips, every linear kernel (batch 1 fused and batched tiles, on every
// kernel variant) against a float64 reference on the unpacked weight, and corrupt packed tensors.
import assert from 'node:assert/strict';
import {
  backendInfo,
  denseWeight,
  InvalidArgumentError,
  InvalidFileError,
  pack24,
  pack24Int4,
  packBsr,
  packBsrInt4,
  packedLinear,
  packedLinearAsync,
  packInt4,
  setKernelVariant,
  Tensor,
  unpackWeight,
  type PackedWeight,
} from '../lib/index.js';
import { poison, randomF32, rng } from './helpers.js';

type Random = () => number;

/** f32 [n, k] with 2:4 groups: each group keeps 0, 1 or 2 random entries (a tail group past k keeps fewer). */
function sparse24Dense(n: number, k: number, random: Random): Float32Array {
  const w = randomF32(n * k, random);
  for (let r = 0; r < n; r++) {
    for (let g = 0; g < k; g += 4) {
      const keep = random() < 0.1 ? Math.floor(random() * 2) : 2;
      const order = [0, 1, 2, 3].sort(() => random() - 0.5);
      for (let p = keep; p < 4; p++) if (g + order[p] < k) w[r * k + g + order[p]] = 0;
    }
  }
  return w;
}

function randomCodes(n: number, k: number, random: Random, pattern?: Float32Array): Int8Array {
  const codes = new Int8Array(n * k);
  for (let i = 0; i < codes.length; i++) codes[i] = pattern && pattern[i] === 0 ? 0 : Math.floor(random() * 16) - 8;
  return codes;
}

function randomScales(n: number, groups: number, random: Random): Tensor {
  const s = new Float32Array(n * groups);
  for (let i = 0; i < s.length; i++) s[i] = 0.01 + random() * 0.1;
  return Tensor.fromTypedArray(s, [n, groups]);
}

/** Zeroes whole blocks of blockSize inputs with probability `sparsity`. */
function blockSparse(n: number, k: number, blockSize: number, sparsity: number, random: Random): Float32Array {
  const w = randomF32(n * k, random);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < k; c += blockSize) {
      if (random() < sparsity) for (let i = c; i < Math.min(k, c + blockSize); i++) w[r * k + i] = 0;
    }
  }
  return w;
}

/** Checks y against x·Wᵀ + bias in float64, within 1e-5 of Σ|w·x| per output. */
function assertLinear(y: Tensor, x: Tensor, dense: Tensor, bias: Float32Array | undefined, what: string): void {
  const [t, k] = x.shape;
  const n = dense.shape[0];
  const w = dense.to('f32').data as Float32Array;
  const xs = x.data as Float32Array;
  const ys = y.data as Float32Array;
  for (let i = 0; i < t; i++) {
    for (let r = 0; r < n; r++) {
      let sum = bias ? bias[r] : 0;
      let magnitude = 0;
      for (let c = 0; c < k; c++) {
        sum += w[r * k + c] * xs[i * k + c];
        magnitude += Math.abs(w[r * k + c] * xs[i * k + c]);
      }
      const got = ys[i * n + r];
      assert.ok(Math.abs(got - sum) <= 1e-5 * magnitude + 1e-6, `${what}: y[${i}, ${r}] = ${got}, expected ${sum} (Σ|w·x| ${magnitude})`);
    }
  }
}

function sameBits(a: Tensor, b: Tensor, what: string): void {
  assert.equal(a.dtype, b.dtype, `${what}: dtype`);
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  const x = new Uint8Array(a.data.buffer, a.data.byteOffset, a.byteLength);
  const y = new Uint8Array(b.data.buffer, b.data.byteOffset, b.byteLength);
  assert.ok(Buffer.from(x).equals(Buffer.from(y)), `${what}: bits differ`);
}

// (outputs, inputs): a tail past a multiple of 4 and 32, an exact multiple of 64, and a long row.
const SHAPES: [number, number][] = [
  [37, 67],
  [64, 256],
  [19, 390],
  [3, 1030],
];
const BATCHES = [1, 3, 16];

async function checkEveryVariant(w: PackedWeight, dense: Tensor, seed: number, what: string): Promise<void> {
  const random = rng(seed);
  const variants = backendInfo('cpu').kernelVariants;
  const bias = randomF32(w.outFeatures, random);
  try {
    for (const variant of variants) {
      setKernelVariant(variant);
      for (const t of BATCHES) {
        const x = Tensor.fromTypedArray(randomF32(t * w.inFeatures, random), [t, w.inFeatures]);
        const out = Tensor.fromTypedArray(poison(new Float32Array(t * w.outFeatures)), [t, w.outFeatures]);
        packedLinear(x, w, { bias: Tensor.fromTypedArray(bias), out });
        assertLinear(out, x, dense, bias, `${what} ${variant} T=${t}`);
        const y = await packedLinearAsync(x, w);
        assertLinear(y, x, dense, undefined, `${what} ${variant} T=${t} async, no bias`);
      }
    }
  } finally {
    setKernelVariant(variants[variants.length - 1]);
  }
}

describe('packed weight formats', function () {
  this.timeout(120000);

  it('dense f32, f16 and bf16 weights: the baseline linear matches x·Wᵀ', async () => {
    const random = rng(1);
    for (const [n, k] of SHAPES) {
      for (const dtype of ['f32', 'f16', 'bf16'] as const) {
        const dense = Tensor.fromTypedArray(randomF32(n * k, random), [n, k]).to(dtype);
        await checkEveryVariant(denseWeight(dense), dense, n + k, `dense ${dtype} [${n}, ${k}]`);
      }
    }
  });

  it('2:4 (f32, f16, bf16 values): packs and unpacks bit for bit, and its linear matches x·Wᵀ', async () => {
    const random = rng(240);
    for (const [n, k] of SHAPES) {
      for (const dtype of ['f32', 'f16', 'bf16'] as const) {
        const dense = Tensor.fromTypedArray(sparse24Dense(n, k, random), [n, k]).to(dtype);
        const w = await pack24(dense);
        assert.deepEqual(w.values.shape, [n, 2 * Math.ceil(k / 4)]);
        sameBits(await unpackWeight(w), dense, `2:4 ${dtype} [${n}, ${k}] round trip`);
        if (dtype !== 'bf16' || k < 400) await checkEveryVariant(w, dense, n * k, `2:4 ${dtype} [${n}, ${k}]`);
      }
    }
  });

  it('refuses to pack a weight that is not 2:4, naming the row and inputs', async () => {
    const dense = new Float32Array(4 * 12).fill(0);
    dense[2 * 12 + 4] = dense[2 * 12 + 5] = dense[2 * 12 + 7] = 1;
    await assert.rejects(pack24(Tensor.fromTypedArray(dense, [4, 12])), (e: unknown) => e instanceof InvalidArgumentError && /row 2, inputs 4\.\.7/.test((e as Error).message));
  });

  it('int4 (symmetric and with zero points, f32/f16/bf16 scales, groups of 2 to 128 inputs): linear matches the dequantized weight', async () => {
    const random = rng(4);
    for (const [n, k] of SHAPES) {
      // Groups smaller than the fused kernel's 32-input span (2–16) take per-lane scales; 24 takes the decoded path.
      for (const groupSize of [2, 8, 16, 24, 32, 64, 128, k]) {
        const groups = Math.ceil(k / groupSize);
        const codes = Tensor.fromTypedArray(randomCodes(n, k, random), [n, k]);
        const zeros = Tensor.fromTypedArray(Int8Array.from({ length: n * groups }, () => Math.floor(random() * 7) - 3), [n, groups]);
        for (const [scaleType, withZeros] of [['f32', false], ['f16', true], ['bf16', false]] as const) {
          const w = packInt4(codes, randomScales(n, groups, random).to(scaleType), groupSize, withZeros ? zeros : undefined);
          const dense = await unpackWeight(w);
          await checkEveryVariant(w, dense, groupSize + k, `int4 g${groupSize} ${scaleType}${withZeros ? ' zeros' : ''} [${n}, ${k}]`);
        }
      }
    }
  });

  it('2:4+int4: codes of the kept half round-trip and the linear matches the dequantized weight (groups of 4 to 128 inputs)', async () => {
    const random = rng(244);
    for (const [n, k] of SHAPES) {
      // Groups smaller than the fused kernel's 64-input chunk (4–32) take per-lane scales; 12 takes the decoded path.
      for (const groupSize of [4, 8, 12, 16, 32, 64, 128, 4 * Math.ceil(k / 4)]) {
        const pattern = sparse24Dense(n, k, random);
        const codes = Tensor.fromTypedArray(randomCodes(n, k, random, pattern), [n, k]);
        const scales = randomScales(n, Math.ceil(k / groupSize), random).to('f16');
        const w = await pack24Int4(codes, scales, groupSize);
        const dense = await unpackWeight(w);
        const expected = packInt4(codes, scales, groupSize);
        sameBits(dense, await unpackWeight(expected), `2:4+int4 g${groupSize} [${n}, ${k}] decodes like the dense codes`);
        await checkEveryVariant(w, dense, groupSize * 7 + k, `2:4+int4 g${groupSize} [${n}, ${k}]`);
      }
    }
  });

  it('BSR (f16 values, blocks of 8/16/32, and CSR outliers) and BSR-int4: round trips and linears', async () => {
    const random = rng(16);
    for (const [n, k] of SHAPES) {
      for (const blockSize of [8, 16, 32]) {
        const dense = Tensor.fromTypedArray(blockSparse(n, k, blockSize, 0.5, random), [n, k]).to('f16');
        const w = await packBsr(dense, blockSize);
        sameBits(await unpackWeight(w), dense, `bsr${blockSize} [${n}, ${k}] round trip`);
        await checkEveryVariant(w, dense, blockSize + k, `bsr${blockSize} f16 [${n}, ${k}]`);

        const pattern = blockSparse(n, k, blockSize, 0.5, random);
        const codes = Tensor.fromTypedArray(randomCodes(n, k, random, pattern), [n, k]);
        const scales = randomScales(n, Math.ceil(k / blockSize), random);
        const q = await packBsrInt4(codes, scales, blockSize);
        const decoded = await unpackWeight(q);
        sameBits(decoded, await unpackWeight(packInt4(codes, scales, blockSize)), `bsr-int4 ${blockSize} [${n}, ${k}] decodes like the dense codes`);
        await checkEveryVariant(q, decoded, blockSize * 3 + k, `bsr-int4 ${blockSize} [${n}, ${k}]`);
      }
    }
  });

  it('adds CSR outliers onto a base format', async () => {
    const random = rng(77);
    const [n, k] = [33, 130];
    const codes = Tensor.fromTypedArray(randomCodes(n, k, random), [n, k]);
    const base = packInt4(codes, randomScales(n, Math.ceil(k / 32), random), 32);
    const sparseOutliers = blockSparse(n, k, 1, 0.97, random);
    const outliers = await packBsr(Tensor.fromTypedArray(sparseOutliers, [n, k]).to('f16'), 1);
    const baseDense = (await unpackWeight(base)).data as Float32Array;
    const outlierDense = (await unpackWeight(outliers)).to('f32').data as Float32Array;
    const dense = Tensor.fromTypedArray(baseDense.map((v, i) => v + outlierDense[i]), [n, k]);
    await checkEveryVariant({ ...base, outliers }, dense, 5, 'int4 + outliers');
  });

  describe('corrupt packed tensors are errors, never reads out of bounds', () => {
    const [n, k] = [6, 64];
    const x = (t: number) => Tensor.fromTypedArray(randomF32(t * k, rng(t)), [t, k]);
    const variants = () => backendInfo('cpu').kernelVariants;
    afterEach(() => setKernelVariant(variants()[variants().length - 1]));

    it('a 2:4 group whose two positions repeat', async () => {
      const w = await pack24(Tensor.fromTypedArray(sparse24Dense(n, k, rng(1)), [n, k]));
      (w.meta.data as Int32Array)[3 * w.meta.shape[1]] = 0; // row 3: every kept value at position 0
      await assert.rejects(unpackWeight(w), (e: unknown) => e instanceof InvalidFileError && /row 3, group 0/.test((e as Error).message));
      for (const variant of variants()) {
        setKernelVariant(variant);
        // Batched tiles decode and check every group; the fused batch-1 kernel (AVX-512) trusts the positions
        // but cannot leave the row's inputs with them: it either reports the group or computes finite values.
        assert.throws(() => packedLinear(x(4), w), InvalidFileError);
        try {
          const y = packedLinear(x(1), w);
          assert.equal(variant, 'avx512', 'only the fused kernel skips the check');
          assert.ok((y.data as Float32Array).every(Number.isFinite), variant);
        } catch (error) {
          assert.ok(error instanceof InvalidFileError, `${variant}: ${String(error)}`);
        }
      }
    });

    it('BSR block columns out of range or out of order, and row pointers that lie', async () => {
      const w = await packBsr(Tensor.fromTypedArray(blockSparse(n, k, 16, 0.3, rng(2)), [n, k]), 16);
      const cols = w.blockCols.data as Int32Array;
      const ptr = w.rowPtr.data as Int32Array;
      const row = ptr.findIndex((p, i) => i < n && ptr[i + 1] - p >= 2);
      for (const bad of [4, 1000, -1]) {
        const saved = cols[ptr[row]];
        cols[ptr[row]] = bad === 4 ? cols[ptr[row] + 1] : bad;
        for (const variant of variants()) {
          setKernelVariant(variant);
          for (const t of [1, 4]) assert.throws(() => packedLinear(x(t), w), (e: unknown) => e instanceof InvalidFileError && new RegExp(`row ${row}`).test((e as Error).message), `${variant} T=${t} blockCol ${bad}`);
        }
        await assert.rejects(unpackWeight(w), InvalidFileError);
        cols[ptr[row]] = saved;
      }
      const end = ptr[n];
      ptr[n] = end + 5;
      assert.throws(() => packedLinear(x(1), w), (e: unknown) => e instanceof InvalidFileError && /rowPtr ends at/.test((e as Error).message));
      ptr[n] = end;
      ptr[2] = ptr[1] - 1;
      assert.throws(() => packedLinear(x(1), w), (e: unknown) => e instanceof InvalidFileError && /rowPtr decreases at row 1/.test((e as Error).message));
    });

    it('shapes that disagree with the activations name the tensor', async () => {
      const w = packInt4(Tensor.fromTypedArray(randomCodes(n, k, rng(3)), [n, k]), randomScales(n, 2, rng(4)), 32);
      assert.throws(() => packedLinear(x(1), { ...w, inFeatures: k + 8 }), /x: expected 72 inputs/);
      assert.throws(() => packedLinear(x(1), { ...w, scales: randomScales(n, 3, rng(5)) }), /scales must be \[6, 2\]/);
    });
  });
});

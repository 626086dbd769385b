// f16 and bf16 outputs checked by value, in the files' own bits: pruning the f16 (tiny-qwen2) and bf16
// (tiny-llama) fixtures writes exactly the input's values where it keeps them and zeros (counted in the
// file) elsewhere; SparseGPT's updated weights are the f32 run's rounded to the stored dtype; the next
// block sees exactly the rounded weights that are saved; and training saves its f32 weights rounded to
// bf16 and f16. The roundings are recomputed here from the f32 bits (round to nearest, ties to even),
// not with the library's conversion.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AbortError, Checkpoint, DecoderModel, parseRecipe, prune, train, type PruneOptions } from '../lib/index.js';
import { fixturePath } from './helpers.js';
import { editModel } from './model-edit.js';

const work = mkdtempSync(join(tmpdir(), 'sparq-dtype-'));
after(() => rmSync(work, { recursive: true, force: true }));
let counter = 0;
const fresh = (label: string) => join(work, `${label}-${++counter}`);

/** f32 → bf16 bits, round to nearest even (NaN stays a quiet NaN). */
export function bf16Bits(value: number): number {
  const u = new Uint32Array(Float32Array.of(value).buffer)[0];
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) & 0x8000) | 0x7fc0;
  return Math.floor((u + 0x7fff + ((u >>> 16) & 1)) / 65536) & 0xffff;
}

/** f32 → f16 bits, round to nearest even, with subnormals, overflow to infinity and NaN. */
export function f16Bits(value: number): number {
  const u = new Uint32Array(Float32Array.of(value).buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exponent = (u >>> 23) & 0xff;
  let mantissa = u & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  const roundShift = (m: number, shift: number) => {
    const r = Math.floor(m / 2 ** shift);
    const rest = m - r * 2 ** shift;
    const half = 2 ** (shift - 1);
    return rest > half || (rest === half && r % 2 === 1) ? r + 1 : r;
  };
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa += 0x800000;
    return sign | roundShift(mantissa, 14 - e); // may round up into the smallest normal: still correct bits
  }
  return sign | ((e << 10) + roundShift(mantissa, 13)); // a carry out of the mantissa bumps the exponent
}

const bitsOf = { f16: f16Bits, bf16: bf16Bits };

/** A tensor's stored 16-bit words as the file holds them. */
async function words(dir: string, name: string): Promise<Uint16Array> {
  const checkpoint = await Checkpoint.open(dir);
  try {
    const t = await checkpoint.read(name);
    assert.ok(t.dtype === 'f16' || t.dtype === 'bf16', `${name} is ${t.dtype}`);
    return new Uint16Array((t.data as Uint16Array).slice().buffer);
  } finally {
    await checkpoint.close();
  }
}

async function values(dir: string, name: string): Promise<Float32Array> {
  const checkpoint = await Checkpoint.open(dir);
  try {
    return (await checkpoint.read(name, { dtype: 'f32' })).data as Float32Array;
  } finally {
    await checkpoint.close();
  }
}

const FIXTURES = [
  ['tiny-qwen2', 'f16'],
  ['tiny-llama', 'bf16'],
] as const;

async function linearNames(dir: string): Promise<string[]> {
  const model = await DecoderModel.open(dir);
  try {
    const names: string[] = [];
    for (let b = 0; b < model.config.layers; ++b) for (const rel of Object.values(model.linearRoles(b))) names.push(`${model.layout.block(b)}${rel}.weight`);
    return names;
  } finally {
    await model.close();
  }
}

function tokens(count: number, vocab: number, seed: number): Int32Array {
  let state = seed;
  return Int32Array.from({ length: count }, () => {
    state = (state * 1103515245 + 12345) >>> 0;
    return state % vocab;
  });
}

describe('f16 and bf16 outputs, by value', function () {
  this.timeout(300_000);

  for (const [fixture, dtype] of FIXTURES) {
    it(`${fixture} (${dtype}) pruned 2:4 by magnitude: the input's bits where kept, +0 elsewhere, two zeros per group counted in the file`, async () => {
      const out = fresh(`${fixture}-magnitude`);
      await prune({ model: fixturePath(fixture), out, recipe: parseRecipe({ method: 'magnitude', sparsity: '2:4' }) });
      for (const name of await linearNames(fixturePath(fixture))) {
        const input = await words(fixturePath(fixture), name);
        const inputValues = await values(fixturePath(fixture), name);
        const written = await words(out, name);
        // Keep the two largest |w| of every four consecutive inputs (rows have a multiple of 4); ties to the lower index.
        const expected = input.slice();
        for (let g = 0; g < input.length; g += 4) {
          const order = [0, 1, 2, 3].sort((a, b) => Math.abs(inputValues[g + b]) - Math.abs(inputValues[g + a]) || a - b);
          for (const dropped of order.slice(2)) expected[g + dropped] = 0;
        }
        assert.deepEqual(written, expected, name);
        const zeros = written.reduce((n, w) => n + ((w & 0x7fff) === 0 ? 1 : 0), 0);
        const inputZeros = input.reduce((n, w) => n + ((w & 0x7fff) === 0 ? 1 : 0), 0);
        assert.ok(zeros >= input.length / 2 && zeros <= input.length / 2 + inputZeros, `${name}: ${zeros} zeros in the file`);
      }
    });

    it(`${fixture} (${dtype}) pruned by SparseGPT: block 0 is the f32 run's weights rounded to ${dtype}; block 1 saw the rounded block 0`, async () => {
      const model = await DecoderModel.open(fixturePath(fixture));
      const vocab = model.config.vocabSize;
      await model.close();
      // The same model stored in f32 (every value exact): its run computes the same block 0 without rounding.
      const f32 = await editModel(fixturePath(fixture), fresh(`${fixture}-f32`), { tensor: (_, t) => (t.dtype === dtype ? t.to('f32') : undefined) });
      const options = (model: string): PruneOptions => ({ model, out: fresh(`${fixture}-sparsegpt`), recipe: parseRecipe({ method: 'sparsegpt', sparsity: 0.5 }), calibrationTokens: tokens(4096, vocab, 7), nsamples: 16, seqLen: 32 });
      const stored = options(fixturePath(fixture));
      const wide = options(f32);
      await prune(stored);
      await prune(wide);
      let changed = 0;
      for (const name of (await linearNames(fixturePath(fixture))).filter((n) => n.includes('.layers.0.'))) {
        const reference = await values(wide.out, name);
        const written = await words(stored.out, name);
        assert.deepEqual(written, Uint16Array.from(reference, bitsOf[dtype]), name);
        const input = await words(fixturePath(fixture), name);
        changed += written.filter((w, i) => w !== 0 && w !== input[i]).length;
      }
      assert.ok(changed > 0, 'SparseGPT updated kept weights, so the rounding was exercised');
      // The next block must see exactly the saved (rounded) weights. A resumed run rebuilds block 1's
      // inputs from the saved block 0, so it matches the uninterrupted run only if that run did too.
      const resumed = { ...options(fixturePath(fixture)) };
      const controller = new AbortController();
      await assert.rejects(prune({ ...resumed, signal: controller.signal, testHook: (p) => (p.at === 'linear' && p.block === 1 ? controller.abort() : undefined) }), AbortError);
      const report = await prune({ ...resumed, resume: true });
      assert.equal(report.totals.resumedAtBlock, 1);
      for (const name of await linearNames(fixturePath(fixture))) assert.deepEqual(await words(resumed.out, name), await words(stored.out, name), name);
    });
  }

  it('training saves its f32 weights rounded to bf16 and to f16, tensor by tensor', async () => {
    const base = { model: fixturePath('stories260K'), tokens: tokens(400, 512, 3), seqLen: 20, batch: 2, steps: 2, optimizer: 'adamw' as const, lr: 1e-3 };
    const outs = { float32: fresh('train-f32'), bfloat16: fresh('train-bf16'), float16: fresh('train-f16') };
    for (const [saveDtype, out] of Object.entries(outs)) await train({ ...base, saveDtype: saveDtype as keyof typeof outs, out });
    const checkpoint = await Checkpoint.open(outs.float32);
    const names = checkpoint.names();
    await checkpoint.close();
    let differs = 0;
    for (const name of names) {
      const reference = await values(outs.float32, name);
      const original = await values(fixturePath('stories260K'), name);
      if (reference.some((v, i) => v !== original[i])) differs++;
      for (const [saveDtype, dtype] of [['bfloat16', 'bf16'], ['float16', 'f16']] as const) {
        assert.deepEqual(await words(outs[saveDtype], name), Uint16Array.from(reference, bitsOf[dtype]), `${saveDtype} ${name}`);
      }
    }
    assert.ok(differs > names.length / 2, 'training moved the weights');
  });

  it('the reference roundings agree with known bit patterns', () => {
    const cases: [number, number, number][] = [
      [1, 0x3c00, 0x3f80],
      [-2, 0xc000, 0xc000],
      [65504, 0x7bff, 0x4780], // bf16: 0x477fe000 rounds up
      [65520, 0x7c00, 0x4780], // f16: halfway to the next binade rounds up to infinity
      [2 ** -24, 0x0001, 0x3380], // the smallest f16 subnormal
      [2 ** -25, 0x0000, 0x3300], // half of it: a tie, to even (zero)
      [1 + 2 ** -11, 0x3c00, 0x3f80], // a tie in f16, to even
      [1 + 3 * 2 ** -11, 0x3c02, 0x3f80],
      [1 + 2 ** -8, 0x3c04, 0x3f80], // bf16: a tie, to even
      [1 + 3 * 2 ** -8, 0x3c0c, 0x3f82],
      [Number.POSITIVE_INFINITY, 0x7c00, 0x7f80],
    ];
    for (const [value, f16, bf16] of cases) {
      assert.equal(f16Bits(value), f16, `f16 of ${value}`);
      assert.equal(bf16Bits(value), bf16, `bf16 of ${value}`);
    }
    assert.equal(f16Bits(Number.NaN) & 0x7e00, 0x7e00);
  });
});

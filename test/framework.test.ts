// The method framework: the pipeline gathers exactly the statistics a method declares, hands group-scope
// methods whole structural groups, uses the declared fallback for linears no calibration token reached,
// and keeps the event loop running (no stall over 100 ms) while it prunes or quantizes a model whose
// layers take far longer than that.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DecoderModel,
  METHODS,
  parseRecipe,
  prune,
  quantize,
  Tensor,
  TensorArena,
  HessianAccumulator,
  writeRandomLlama,
  type CompressedLinear,
  type CompressionMethod,
  type CompressRequest,
  type GroupRequest,
} from '../lib/index.js';
import { captureStatistics } from '../lib/pipeline/capture.js';
import { countLoopTurns, fixturePath, sharedDir } from './helpers.js';
import { observeSyncCalls } from '../lib/tensor/native.js';

const work = mkdtempSync(join(tmpdir(), 'sparq-framework-'));
after(() => rmSync(work, { recursive: true, force: true }));
let counter = 0;
const outDir = (label: string) => join(work, `${label}-${++counter}`);
const stories = () => fixturePath('stories260K');
const calib = () => join(sharedDir(), 'data', 'tinystories_calib.txt');

/** Registers a method for the duration of one test. */
async function withMethod<T>(method: CompressionMethod<any>, work: () => Promise<T>): Promise<T> {
  METHODS[method.name] = method;
  try {
    return await work();
  } finally {
    delete METHODS[method.name];
  }
}

/** A method that records what it was handed and changes nothing. */
function spy(name: string, needs: CompressionMethod['needs'], seen: CompressRequest<unknown>[]): CompressionMethod<Record<string, never>> {
  return {
    name,
    summary: 'records its requests (test)',
    needs,
    scope: 'linear',
    prunes: true,
    requiresSparsity: true,
    quantizes: () => false,
    fallback: 'magnitude',
    parseOptions: () => ({}),
    async compress(request) {
      seen.push(request);
      return { weight: request.weight };
    },
  };
}

describe('the compression framework', function () {
  this.timeout(600_000);

  it('gathers exactly the statistics a method declares: input squares without a Hessian, nothing for data-free methods', async () => {
    const base = { model: stories(), recipe: { stages: [{ method: 'spy', sparsity: 0.5, targets: ['model.layers.1.*'] }] }, calibrationFile: calib(), nsamples: 8, seqLen: 64 };
    const cases: [CompressionMethod['needs'], boolean | 'auto', string[]][] = [
      [{ inputSquares: true }, 'auto', ['inputSquares']],
      [{ hessian: true }, 'auto', ['hessian']],
      [{}, 'auto', []],
      [{ inputSquares: true }, true, ['hessian', 'inputSquares']], // measuring errors on demand needs H
    ];
    for (const [needs, measureError, expected] of cases) {
      const seen: CompressRequest<unknown>[] = [];
      await withMethod(spy('spy', needs, seen), () => prune({ ...base, out: outDir('spy'), measureError }));
      assert.equal(seen.length, 7);
      for (const request of seen) {
        const got = Object.keys(request.stats ?? {}).filter((k) => k !== 'tokens').sort();
        assert.deepEqual(got, expected, `${JSON.stringify(needs)} (measureError ${measureError}): ${request.name} got ${got}`);
        if (expected.length > 0) assert.equal(request.stats!.tokens, 8 * 64);
        assert.equal(request.storageDType, 'f32');
      }
    }
    // Σ_t x_tj² and H = (2/T)·XᵀX describe the same inputs: diag(H) = (2/T)·Σ_t x_tj².
    const seen: CompressRequest<unknown>[] = [];
    await withMethod(spy('spy', { hessian: true, inputSquares: true }, seen), () => prune({ ...base, out: outDir('both') }));
    for (const request of seen) {
      const n = request.weight.shape[1];
      const h = request.stats!.hessian!.data as Float32Array;
      const squares = request.stats!.inputSquares!.data as Float32Array;
      for (let j = 0; j < n; ++j) {
        const expected = (2 / request.stats!.tokens) * squares[j];
        assert.ok(Math.abs(h[j * n + j] - expected) <= 1e-4 * expected, `${request.name} input ${j}: ${h[j * n + j]} vs ${expected}`);
      }
    }
  });

  it('hands a group-scope method whole structural groups: removing MLP neurons across gate, up and down', async () => {
    const groups: string[] = [];
    const neurons: CompressionMethod<Record<string, never>> = {
      name: 'neurons',
      summary: 'removes the MLP neurons with the smallest weights (test)',
      needs: { inputSquares: true },
      scope: 'group',
      prunes: true,
      requiresSparsity: true,
      quantizes: () => false,
      parseOptions: () => ({}),
      async compressGroup(request: GroupRequest<Record<string, never>>) {
        groups.push(`${request.linears[0].name.split('.mlp.')[0]}.${request.group}`);
        const [gate, up, down] = request.linears;
        assert.deepEqual(request.linears.map((l) => l.role), ['gate', 'up', 'down']);
        assert.ok(request.linears.every((l) => l.stats?.inputSquares), 'every member has its own statistics');
        const [inner, hidden] = gate.weight.shape;
        const score = (j: number) => {
          let s = 0;
          for (let k = 0; k < hidden; ++k) s += (gate.weight.data as Float32Array)[j * hidden + k] ** 2 + (up.weight.data as Float32Array)[j * hidden + k] ** 2;
          return s;
        };
        const order = Array.from({ length: inner }, (_, j) => j).sort((a, b) => score(a) - score(b) || a - b);
        const removed = new Set(order.slice(0, Math.round(0.25 * inner)));
        const kept = Int32Array.from(order.slice(Math.round(0.25 * inner)).sort((a, b) => a - b));
        for (const j of removed) {
          (gate.weight.data as Float32Array).fill(0, j * hidden, (j + 1) * hidden);
          (up.weight.data as Float32Array).fill(0, j * hidden, (j + 1) * hidden);
          for (let r = 0; r < hidden; ++r) (down.weight.data as Float32Array)[r * inner + j] = 0;
        }
        return new Map<string, CompressedLinear>([
          ['gate', { weight: gate.weight, structure: { keptRows: kept } }],
          ['up', { weight: up.weight, structure: { keptRows: kept } }],
          ['down', { weight: down.weight, structure: { keptColumns: kept } }],
        ]);
      },
    };
    await withMethod(neurons, async () => {
      const out = outDir('neurons');
      // layout padded: the original shapes with the neurons zeroed (the default for structured methods shrinks them away).
      const report = await prune({ model: stories(), out, recipe: { stages: [{ method: 'neurons', sparsity: 0.25, targets: ['*.mlp.*'] }] }, calibrationFile: calib(), nsamples: 8, seqLen: 64, layout: 'padded' });
      assert.deepEqual(groups, [0, 1, 2, 3, 4].map((b) => `model.layers.${b}.mlp`));
      assert.equal(report.linears.length, 15);
      const model = await DecoderModel.open(out);
      try {
        for (let b = 0; b < 5; ++b) {
          const block = await model.loadBlock(b);
          const gate = block.linears.gate.weight.data as Float32Array;
          const down = block.linears.down.weight.data as Float32Array;
          let removed = 0;
          for (let j = 0; j < 172; ++j) {
            const zeroRow = gate.subarray(j * 64, (j + 1) * 64).every((v) => v === 0);
            const zeroColumn = Array.from({ length: 64 }, (_, r) => down[r * 172 + j]).every((v) => v === 0);
            assert.equal(zeroRow, zeroColumn, `block ${b} neuron ${j}: gate row and down column go together`);
            removed += zeroRow ? 1 : 0;
          }
          assert.equal(removed, 43, `block ${b}`);
        }
      } finally {
        await model.close();
      }
      // A group method needs every member of the group.
      await assert.rejects(
        prune({ model: stories(), out: outDir('partial'), recipe: { stages: [{ method: 'neurons', sparsity: 0.25, targets: ['*.mlp.gate_proj', '*.mlp.up_proj'] }] }, calibrationFile: calib(), nsamples: 4, seqLen: 64 }),
        /model\.layers\.0\.mlp: neurons compresses mlp\.gate_proj, mlp\.up_proj, mlp\.down_proj together; the recipe must assign all of them/,
      );
    });
  });

  it('compresses a linear no calibration token reached with the declared fallback, and refuses a method that declares none', async () => {
    // With these two tokens, no token of tiny-mixtral's layer 0 is routed to expert 0.
    const windows = [Int32Array.of(1, 2)];
    const model = fixturePath('tiny-mixtral');
    const report = await prune({ model, out: outDir('fallback'), recipe: parseRecipe({ method: 'sparsegpt', sparsity: 0.5, targets: ['*.experts.*'], fallback: 'magnitude' }), calibrationWindows: windows });
    const idle = report.linears.filter((l) => l.details?.fallback);
    assert.deepEqual(idle.map((l) => l.name).filter((n) => n.includes('layers.0.')), ['w1', 'w3', 'w2'].map((w) => `model.layers.0.block_sparse_moe.experts.0.${w}`));
    assert.ok(idle.every((l) => l.details!.fallback === 'magnitude: no calibration tokens reached this linear' && l.sparsity === 0.5));
    const seen: CompressRequest<unknown>[] = [];
    const noFallback = { ...spy('nofallback', { hessian: true }, seen), fallback: undefined };
    await withMethod(noFallback, () =>
      assert.rejects(
        prune({ model, out: outDir('nofallback'), recipe: parseRecipe({ method: 'nofallback', sparsity: 0.5, targets: ['*.experts.*'] }), calibrationWindows: windows }),
        /experts\.0\.w1: no calibration token reached this linear and nofallback declares no fallback; give the stage a 'fallback'/,
      ),
    );
    assert.throws(() => parseRecipe({ method: 'sparsegpt', sparsity: 0.5, fallback: 'wanda' }), /fallback: the fallback compresses linears no calibration token reached, so it must need no calibration \(wanda does\)/);
  });

  it('accumulates statistics over many batches exactly as a plain pass does, even when the arena recycles buffers of the Hessian\'s size', async () => {
    // The MLP's inner width equals the batch's rows, so the activations and the mlp.out Hessian (256×256)
    // are buffers of one size: a Hessian allocated from the arena would be handed back as an activation.
    const dir = join(work, 'square');
    await writeRandomLlama(dir, { hiddenSize: 64, intermediateSize: 256, layers: 1, heads: 4, vocabSize: 64, maxPositions: 64, seed: 3 });
    const model = await DecoderModel.open(dir);
    try {
      const embeddings = await model.loadEmbeddings();
      const batches = [0, 1, 2].map((b) => ({
        states: model.embed(embeddings, Int32Array.from({ length: 256 }, (_, i) => (i * 7 + b * 13) % 64), 64),
        positions: Tensor.fromTypedArray(Int32Array.from({ length: 256 }, (_, i) => i % 64)),
      }));
      const block = await model.loadBlock(0);
      const groups = ['attention.in', 'attention.out', 'mlp.in', 'mlp.out'];
      const needs = new Map(groups.map((g) => [g, { hessian: true, inputSquares: true }]));
      const captured = await captureStatistics(model, block, batches, 64, needs, new TensorArena());
      const reference = new Map<string, HessianAccumulator>();
      for (const batch of batches) {
        await block.forward(batch.states.clone(), batch.positions, model.invFreq, {
          sequenceLength: 64,
          observe: (group, input) => {
            if (!reference.has(group)) reference.set(group, new HessianAccumulator(input.shape[1]));
            reference.get(group)!.add(input);
          },
        });
      }
      for (const group of groups) {
        assert.deepEqual(captured.get(group)!.hessian!.data, reference.get(group)!.hessian.data, group);
        assert.equal(captured.get(group)!.tokens, 768, group);
      }
    } finally {
      await model.close();
    }
  });

  it('keeps heavy native work off the JavaScript thread and the event loop turning while pruning and quantizing layers that take seconds', async () => {
    const dir = join(work, 'generated');
    // 2048-row calibration batches through 1024×2816 MLPs: each forward GEMM is ~6 GFLOP (≥ 100 ms on two
    // cores); run on the JavaScript thread, one of them alone would stall the loop.
    await writeRandomLlama(dir, { hiddenSize: 1024, intermediateSize: 2816, layers: 2, heads: 16, vocabSize: 256, maxPositions: 512, seed: 1 });
    const tokens = Int32Array.from({ length: 8192 }, (_, i) => (i * 2654435761) % 256);
    // Structural, not timed (a stall in milliseconds depends on the machine's load): every native call made
    // on the JavaScript thread is observed, and none of the superlinear ops (products, factorizations, the
    // column sweep, attention) may touch an operand of more than 64K elements there; and the loop must keep
    // turning (setImmediate callbacks) while the run is in flight.
    const superlinear = /^(gemm|syrk|cholesky|trsm|eigh|maskedCg|columnSweep|attention|attentionBackward|alpsAdmmStep|topkMask|denseLinear|int4Linear|sparse24Linear|sparse24Int4Linear|bsrLinear|bsrInt4Linear)$/;
    // A tensor travels as (data, dtype code, shape): its size is the product of its shape.
    const elements = (arg: unknown): number => (Array.isArray(arg) && arg.length > 0 && arg.every((d) => Number.isInteger(d)) ? arg.reduce((p: number, d: number) => p * d, 1) : 0);
    for (const run of [
      () => prune({ model: dir, out: outDir('lag-prune'), recipe: parseRecipe({ method: 'sparsegpt', sparsity: 0.5 }), calibrationTokens: tokens, nsamples: 4, seqLen: 512 }),
      () => quantize({ model: dir, out: outDir('lag-quantize'), format: 'dense', recipe: parseRecipe({ method: 'gptq', quantize: { bits: 4, groupSize: 128, actOrder: 'static' } }), calibrationTokens: tokens, nsamples: 4, seqLen: 512 }),
    ]) {
      const onThread: string[] = [];
      let syncCalls = 0;
      const previous = observeSyncCalls((_device, name, args) => {
        syncCalls++;
        const largest = Math.max(0, ...args.map(elements));
        if (superlinear.test(name) && largest > 65536) onThread.push(`${name} (${largest} elements)`);
      });
      const started = performance.now();
      let turns: number;
      try {
        ({ turns } = await countLoopTurns(run));
      } finally {
        observeSyncCalls(previous);
      }
      console.log(`      ${((performance.now() - started) / 1000).toFixed(1)} s, ${turns} event-loop turns, ${syncCalls} synchronous native calls`);
      assert.deepEqual(onThread, [], 'superlinear native work ran on the JavaScript thread');
      assert.ok(turns >= 50, `the event loop turned only ${turns} times during the run`);
    }
  });
});

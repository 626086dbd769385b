// `npm run bench:hwpq-speed`: HWPQ's claim is speed (the paper: about 12× faster pruning and 6× faster
// quantization than Hessian-based methods). Seconds of the method itself on one layer — what the driver's
// `compress` stage times — for HWPQ against SparseGPT (50% unstructured; 2:4) and GPTQ (W4 g128), on
// random layers of Llama shapes with statistics from 2048 random correlated input tokens. SparseGPT and
// GPTQ include their Hessian preparation (damping, Cholesky factor of the inverse); HWPQ needs only
// Σ_t x_tj². The methods run interleaved, the best of 3 each, so that the other work on a shared machine
// skews them alike. Writes bench/hwpq-speed-results.json.
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { backendInfo, getMethod, HessianAccumulator, Tensor, type CompressRequest } from '../lib/index.js';
import { repo } from './util.js';

function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const SHAPES: [number, number][] = [
  [768, 768],
  [2048, 768],
  [768, 2048],
];
const TOKENS = 2048;
const rows: Record<string, unknown>[] = [];
for (const [out, inputs] of SHAPES) {
  const rand = random(out * 7 + inputs);
  const x = new Float32Array(TOKENS * inputs);
  for (let t = 0; t < TOKENS; ++t) {
    let carry = 0;
    for (let j = 0; j < inputs; ++j) {
      carry = 0.5 * carry + (rand() - 0.5);
      x[t * inputs + j] = carry * (1 + (j % 7));
    }
  }
  const acc = new HessianAccumulator(inputs);
  acc.add(Tensor.fromTypedArray(x, [TOKENS, inputs]));
  const hessian = acc.hessian;
  const squares = new Float32Array(inputs);
  for (let t = 0; t < TOKENS; ++t) for (let j = 0; j < inputs; ++j) squares[j] += x[t * inputs + j] ** 2;
  const weight = Float32Array.from({ length: out * inputs }, () => (rand() - 0.5) * 0.1);
  const stats = { tokens: TOKENS, hessian, inputSquares: Tensor.fromTypedArray(squares) };
  const cases: { label: string; method: string; request: Partial<CompressRequest<unknown>>; options?: Record<string, unknown> }[] = [
    { label: 'hwpq 50%', method: 'hwpq', request: { pattern: { kind: 'unstructured', sparsity: 0.5 } } },
    { label: 'sparsegpt 50%', method: 'sparsegpt', request: { pattern: { kind: 'unstructured', sparsity: 0.5 } } },
    { label: 'hwpq 2:4', method: 'hwpq', request: { pattern: { kind: 'nm', n: 2, m: 4 } } },
    { label: 'sparsegpt 2:4', method: 'sparsegpt', request: { pattern: { kind: 'nm', n: 2, m: 4 } } },
    { label: 'hwpq W4 g128', method: 'hwpq', request: { quantization: { bits: 4, groupSize: 128, symmetric: true } } },
    { label: 'gptq W4 g128', method: 'gptq', request: { quantization: { bits: 4, groupSize: 128, symmetric: true } } },
    { label: 'hwpq fp8', method: 'hwpq', request: { quantization: { bits: 8, groupSize: 0, symmetric: true } }, options: { format: 'fp8' } },
  ];
  const best = new Map<string, number>();
  for (let repeat = 0; repeat < 3; ++repeat) {
    for (const c of cases) {
      const method = getMethod(c.method);
      const options = method.parseOptions(c.options ?? {}, 'bench');
      const started = performance.now();
      await method.compress!({ name: c.label, weight: Tensor.fromTypedArray(weight.slice(), [out, inputs]), stats, options, ...c.request } as CompressRequest<unknown>);
      const seconds = (performance.now() - started) / 1000;
      best.set(c.label, Math.min(best.get(c.label) ?? Infinity, seconds));
    }
  }
  const pair = (a: string, b: string) => Number((best.get(b)! / best.get(a)!).toFixed(2));
  const row = {
    shape: `${out}×${inputs}`,
    seconds: Object.fromEntries([...best].map(([k, v]) => [k, Number(v.toFixed(4))])),
    'sparsegpt 50% / hwpq 50%': pair('hwpq 50%', 'sparsegpt 50%'),
    'sparsegpt 2:4 / hwpq 2:4': pair('hwpq 2:4', 'sparsegpt 2:4'),
    'gptq / hwpq W4': pair('hwpq W4 g128', 'gptq W4 g128'),
  };
  console.log(JSON.stringify(row));
  rows.push(row);
}
writeFileSync(join(repo, 'bench', 'hwpq-speed-results.json'), `${JSON.stringify({ date: new Date().toISOString(), cpu: cpus()[0]?.model, threads: backendInfo('cpu').threads, tokens: TOKENS, note: 'best of 3, interleaved; shared 2-core VM under heavy load', rows }, null, 2)}\n`);

// Times every packed-format linear on the CUDA backend against dense f32/f16 (run by scripts/gpu-check.sh
// after `npx tsc -p tsconfig.dev.json`). Each row: the median time per call (one packedLinear, which
// synchronizes, so launch and sync are included), the weight bytes read per second, and the speed-up over
// dense f16 at the same batch. Weights are synthetic: random values/codes in each format's pattern.
import {
  denseWeight,
  isAvailable,
  loadAttempts,
  pack24,
  pack24Int4,
  packBsr,
  packBsrInt4,
  packedBytes,
  packedLinear,
  packInt4,
  Tensor,
} from '../.out/lib/index.js';

if (!isAvailable('cuda')) {
  console.error(`no CUDA backend: ${loadAttempts().filter((a) => a.backend === 'cuda').map((a) => a.error).join('; ')}`);
  process.exit(1);
}
const [n, k] = (process.env.SHAPE ?? '4096x4096').split('x').map(Number);
const batches = (process.env.BATCHES ?? '1,16,64').split(',').map(Number);
let seed = 1;
const random = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 4294967296);
const values = Float32Array.from({ length: n * k }, () => random() * 2 - 1);
const codes = (pattern) => Tensor.fromTypedArray(Int8Array.from(pattern, (v) => (v === 0 ? 0 : Math.floor(random() * 16) - 8)), [n, k]);
const scales = (groups) => Tensor.fromTypedArray(Float32Array.from({ length: n * groups }, () => 0.01 + random() * 0.1), [n, groups]).to('f16');
const pattern24 = values.map((v, i) => (i % 4 < 2 ? v : 0));
const blocks16 = values.map((v, i) => (Math.floor((i % k) / 16 + Math.floor(i / k)) % 2 ? v : 0)); // half the blocks

const weights = [
  ['dense f32', denseWeight(Tensor.fromTypedArray(values, [n, k]))],
  ['dense f16', denseWeight(Tensor.fromTypedArray(values, [n, k]).to('f16'))],
  ['int4 g128', packInt4(codes(values), scales(Math.ceil(k / 128)), 128)],
  ['2:4 f16', await pack24(Tensor.fromTypedArray(pattern24, [n, k]).to('f16'))],
  ['2:4+int4 g128', await pack24Int4(codes(pattern24), scales(Math.ceil(k / 128)), 128)],
  ['bsr16 f16 (50%)', await packBsr(Tensor.fromTypedArray(blocks16, [n, k]).to('f16'), 16)],
  ['bsr-int4 16 (50%)', await packBsrInt4(codes(blocks16), scales(Math.ceil(k / 16)), 16)],
];

const toDevice = (w) => Object.fromEntries(Object.entries(w).map(([key, v]) => [key, v instanceof Tensor ? v.cuda() : v]));
function median(fn, iterations) {
  for (let i = 0; i < 5; i++) fn();
  const times = [];
  for (let i = 0; i < iterations; i++) {
    const start = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - start) / 1e3);
  }
  return times.sort((a, b) => a - b)[Math.floor(iterations / 2)];
}

console.log(`packed linears on CUDA, W [${n}, ${k}] (median µs per call, incl. launch + sync)`);
console.log(['format', 'T', 'µs', 'weight GB/s', 'vs dense f16'].map((h) => h.padStart(18)).join(''));
for (const t of batches) {
  const x = Tensor.fromTypedArray(Float32Array.from({ length: t * k }, () => random() - 0.5), [t, k]).cuda();
  const out = Tensor.zeros([t, n], 'f32', 'cuda');
  let denseF16 = 0;
  for (const [name, w] of weights) {
    const onDevice = toDevice(w);
    const us = median(() => packedLinear(x, onDevice, { out }), 200);
    if (name === 'dense f16') denseF16 = us;
    const gbs = packedBytes(w) / (us * 1e3);
    console.log([name, t, us.toFixed(1), gbs.toFixed(0), denseF16 ? `${(denseF16 / us).toFixed(2)}x` : '-'].map((c) => String(c).padStart(18)).join(''));
  }
}

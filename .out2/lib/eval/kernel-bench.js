// Benchmarks of the linear kernels on every weight format, for `sparq bench` and bench/kernels.ts: time per
// call, GFLOP/s, the weight bytes read per second, that rate as a fraction of the measured memory-copy
// roofline, and speed-ups over dense f32 and over the format each one is meant to beat. Weights are
// synthetic (random codes and values in each format's pattern); only the timing is measured.
import { cpus } from 'node:os';
import { backendInfo, callSync, setKernelVariant } from '../tensor/native.js';
import { denseWeight, pack24, pack24Int4, packBsr, packBsrInt4, packedBytes, packedLinear, packedWeightTo, packInt4, } from '../tensor/packed.js';
import { Tensor } from '../tensor/tensor.js';
import { InvalidArgumentError } from '../errors.js';
import { sparqVersion } from '../version.js';
export const KERNEL_FORMATS = ['dense-f32', 'dense-f16', 'dense-bf16', 'int4', '2:4', '2:4+int4', 'bsr', 'bsr-int4'];
/** The format each one's target compares it with (dense f32 is the common baseline). */
export const REFERENCE_FORMAT = {
    'dense-f32': 'dense-f32',
    'dense-f16': 'dense-f32',
    'dense-bf16': 'dense-f32',
    int4: 'dense-f32',
    '2:4': 'dense-f16',
    '2:4+int4': 'int4',
    bsr: 'dense-f16',
    'bsr-int4': 'int4',
};
export const DEFAULT_KERNEL_BENCH = {
    shapes: [
        [1, 4096, 4096],
        [16, 4096, 4096],
    ],
    formats: [...KERNEL_FORMATS],
    groupSize: 128,
    blockSize: 16,
    blockSparsity: 0.5,
    seconds: 0.5,
    device: 'cpu',
};
/** A deterministic generator so every run benchmarks the same weights. */
function generator(seed) {
    let s = seed >>> 0;
    return () => {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        return s / 4294967296;
    };
}
function randomF32(n, random) {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++)
        out[i] = random() * 2 - 1;
    return out;
}
/** Zeroes 2 of every 4 inputs (positions chosen at random per group). */
function apply24(values, k, random) {
    for (let base = 0; base < values.length; base += k) {
        for (let g = 0; g < k; g += 4) {
            const keepA = Math.floor(random() * 4);
            const keepB = (keepA + 1 + Math.floor(random() * 3)) % 4;
            for (let p = 0; p < 4 && g + p < k; p++)
                if (p !== keepA && p !== keepB)
                    values[base + g + p] = 0;
        }
    }
}
function applyBlocks(values, k, blockSize, sparsity, random) {
    for (let base = 0; base < values.length; base += k) {
        for (let c = 0; c < k; c += blockSize)
            if (random() < sparsity)
                values.fill(0, base + c, base + Math.min(k, c + blockSize));
    }
}
function randomCodes(n, random) {
    const codes = new Int8Array(n);
    for (let i = 0; i < n; i++)
        codes[i] = Math.floor(random() * 15) - 7 || 1; // nonzero, so patterns come only from pruning
    return codes;
}
function scalesFor(n, groups, random) {
    const s = new Float32Array(n * groups);
    for (let i = 0; i < s.length; i++)
        s[i] = 0.001 + random() * 0.01;
    return Tensor.fromTypedArray(s, [n, groups]).to('f16');
}
async function buildWeight(format, n, k, options) {
    const random = generator(n * 31 + k);
    const { groupSize, blockSize, blockSparsity } = options;
    switch (format) {
        case 'dense-f32':
            return denseWeight(Tensor.fromTypedArray(randomF32(n * k, random), [n, k]));
        case 'dense-f16':
            return denseWeight(Tensor.fromTypedArray(randomF32(n * k, random), [n, k]).to('f16'));
        case 'dense-bf16':
            return denseWeight(Tensor.fromTypedArray(randomF32(n * k, random), [n, k]).to('bf16'));
        case 'int4':
            return packInt4(Tensor.fromTypedArray(randomCodes(n * k, random), [n, k]), scalesFor(n, Math.ceil(k / groupSize), random), groupSize);
        case '2:4': {
            const values = randomF32(n * k, random);
            apply24(values, k, random);
            return pack24(Tensor.fromTypedArray(values, [n, k]).to('f16'));
        }
        case '2:4+int4': {
            const codes = randomCodes(n * k, random);
            apply24(codes, k, random);
            return pack24Int4(Tensor.fromTypedArray(codes, [n, k]), scalesFor(n, Math.ceil(k / groupSize), random), groupSize);
        }
        case 'bsr': {
            const values = randomF32(n * k, random);
            applyBlocks(values, k, blockSize, blockSparsity, random);
            return packBsr(Tensor.fromTypedArray(values, [n, k]).to('f16'), blockSize);
        }
        case 'bsr-int4': {
            const codes = randomCodes(n * k, random);
            applyBlocks(codes, k, blockSize, blockSparsity, random);
            return packBsrInt4(Tensor.fromTypedArray(codes, [n, k]), scalesFor(n, Math.ceil(k / blockSize), random), blockSize);
        }
    }
}
/** Median seconds per call of fn, calling it for about `seconds` (at least 3 times) after one warm-up. */
export function medianSeconds(fn, seconds) {
    fn();
    const times = [];
    const started = performance.now();
    while (times.length < 3 || (performance.now() - started) / 1000 < seconds) {
        const t0 = performance.now();
        fn();
        times.push((performance.now() - t0) / 1000);
        if (times.length >= 1000)
            break;
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)];
}
/** The memory-copy probe: an f32 copy of `bytes` on `device` (read + write bytes per second). */
export function measureCopyGBs(bytes, seconds, device = 'cpu') {
    const count = Math.floor(bytes / 4);
    const src = Tensor.fromTypedArray(new Float32Array(count).fill(1)).toDevice(device);
    const dst = Tensor.zeros([count], 'f32', device);
    // The unary op's copy into a preallocated, already touched output: no allocation or page faults timed.
    const args = [0, ...src.nativeArgs('x'), ...dst.nativeArgs('out'), 0, 0];
    const time = medianSeconds(() => callSync(device, 'unary', args), seconds);
    return (2 * 4 * count) / time / 1e9;
}
function checkOptions(options) {
    const o = { ...DEFAULT_KERNEL_BENCH, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
    for (const shape of o.shapes) {
        if (!(shape.length === 3 && shape.every((d) => Number.isSafeInteger(d) && d > 0) && shape[0] <= 4096)) {
            throw new InvalidArgumentError(`kernel bench: shape ${JSON.stringify(shape)} must be M,N,K: three positive integers, M (tokens) at most 4096`);
        }
    }
    for (const f of o.formats)
        if (!KERNEL_FORMATS.includes(f))
            throw new InvalidArgumentError(`kernel bench: unknown format '${f}' (known: ${KERNEL_FORMATS.join(', ')})`);
    if (![8, 16, 32].includes(o.blockSize))
        throw new InvalidArgumentError(`kernel bench: block size must be 8, 16 or 32, got ${o.blockSize}`);
    if (!(o.groupSize >= 4 && o.groupSize % 4 === 0))
        throw new InvalidArgumentError(`kernel bench: group size must be a multiple of 4, got ${o.groupSize}`);
    if (!(o.blockSparsity >= 0 && o.blockSparsity < 1))
        throw new InvalidArgumentError(`kernel bench: block sparsity must be in [0, 1), got ${o.blockSparsity}`);
    if (!(o.seconds > 0))
        throw new InvalidArgumentError(`kernel bench: seconds must be > 0, got ${o.seconds}`);
    if (o.device !== 'cpu' && o.device !== 'cuda')
        throw new InvalidArgumentError(`kernel bench: device must be cpu or cuda, got '${o.device}'`);
    const { onProgress: _ignored, ...rest } = o;
    return rest;
}
const round = (x, digits = 3) => Number(x.toPrecision(digits));
/**
 * Times every format × shape × batch on one backend (the CPU by default), with a copy probe measured just before each
 * format's cases (this machine's bandwidth drifts; ratios compare neighbouring measurements).
 */
export async function runKernelBench(options = {}) {
    const o = checkOptions(options);
    const progress = options.onProgress ?? (() => { });
    const info = backendInfo(o.device);
    const copyBytes = 256 << 20;
    const copyGBs = measureCopyGBs(copyBytes, o.seconds, o.device);
    const rows = [];
    // Reference formats are timed even when not asked for, so every speed-up has its denominator.
    const wanted = new Set(o.formats);
    const timed = new Set([...o.formats, 'dense-f32', ...o.formats.map((f) => REFERENCE_FORMAT[f])]);
    const secondsOf = new Map();
    // One weight per (N, K) and format, timed at every M asked for with it.
    const weights = new Map();
    for (const [m, n, k] of o.shapes)
        weights.set(`${n},${k}`, [...(weights.get(`${n},${k}`) ?? []), m]);
    for (const [nk, batches] of weights) {
        const [n, k] = nk.split(',').map(Number);
        for (const format of KERNEL_FORMATS.filter((f) => timed.has(f))) {
            progress(`building ${format} [${n}, ${k}]`);
            const weight = packedWeightTo(await buildWeight(format, n, k, o), o.device);
            const neighbourCopy = measureCopyGBs(copyBytes, Math.min(o.seconds, 0.3), o.device);
            for (const batch of batches) {
                const x = Tensor.fromTypedArray(randomF32(batch * k, generator(batch)), [batch, k]).toDevice(o.device);
                const out = Tensor.zeros([batch, n], 'f32', o.device);
                progress(`timing ${format} [${n}, ${k}] batch ${batch}`);
                const seconds = medianSeconds(() => packedLinear(x, weight, { out }), o.seconds);
                secondsOf.set(`${format}|${n}|${k}|${batch}`, seconds);
                if (!wanted.has(format))
                    continue;
                const weightBytes = packedBytes(weight);
                rows.push({
                    format,
                    outFeatures: n,
                    inFeatures: k,
                    batch,
                    weightBytes,
                    seconds,
                    gflops: round((2 * n * k * batch) / seconds / 1e9),
                    weightGBs: round(weightBytes / seconds / 1e9),
                    rooflineFraction: round(weightBytes / seconds / 1e9 / neighbourCopy),
                    speedupOverDenseF32: null,
                    reference: REFERENCE_FORMAT[format],
                    speedupOverReference: null,
                });
            }
        }
    }
    for (const row of rows) {
        const key = (f) => secondsOf.get(`${f}|${row.outFeatures}|${row.inFeatures}|${row.batch}`);
        const dense = key('dense-f32');
        const reference = key(row.reference);
        row.speedupOverDenseF32 = dense ? round(dense / row.seconds) : null;
        row.speedupOverReference = reference ? round(reference / row.seconds) : null;
    }
    return {
        schema: 'sparq.kernel-bench/1',
        sparqVersion: sparqVersion(),
        machine: { cpuModel: cpus()[0]?.model ?? 'unknown', cores: cpus().length, threads: info.threads, backend: info.backend, kernelVariant: info.kernelVariant, description: info.description },
        copyGBs: round(copyGBs),
        copyBytes,
        options: o,
        rows,
    };
}
/** Runs the benchmark on one kernel variant (e.g. 'avx2'), restoring the previous one afterwards. */
export async function runKernelBenchOnVariant(variant, options = {}) {
    const device = options.device ?? 'cpu';
    const previous = backendInfo(device).kernelVariant;
    setKernelVariant(variant, device);
    try {
        return await runKernelBench(options);
    }
    finally {
        setKernelVariant(previous, device);
    }
}
//# sourceMappingURL=kernel-bench.js.map
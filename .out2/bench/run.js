// `npm run bench`: sparq's kernels against their baselines, measured in one run on this machine.
//   gemm / syrk GFLOP/s vs OpenBLAS called directly (bench/native/openblas_direct.c)
//   Cholesky inverse seconds
//   conversions, masks and the quantization kernels (pack, unpack, dequantize, round to nearest) in
//   GB/s vs a memory-copy probe, and vs their scalar references
//   the N-API round trip of a tiny op
// Prints tables and writes bench/results.json. Quick mode (SPARQ_BENCH_QUICK=1) uses small sizes.
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { Bench } from 'tinybench';
import { axpy, backendInfo, choleskyInverse, packCodes, quantizeRtn, gemm, setKernelVariant, syrk, Tensor, thresholdMask, } from '../lib/index.js';
import { dtypeCode } from '../lib/tensor/dtype.js';
import { backend, callSync } from '../lib/tensor/native.js';
const quick = process.env.SPARQ_BENCH_QUICK === '1';
const require = createRequire(import.meta.url);
const direct = require('../../bench/native/build/Release/sparq_bench_openblas.node');
function randomArray(n, seed = 1) {
    const out = new Float32Array(n);
    let s = seed >>> 0;
    for (let i = 0; i < n; ++i) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        out[i] = s / 2147483648 - 1;
    }
    return out;
}
/** Median milliseconds of fn over at least `iterations` runs and `time` ms. */
async function medianMs(tasks, options) {
    const bench = new Bench({ iterations: options.iterations, time: options.time, warmupIterations: 1, warmupTime: 0 });
    for (const [name, fn] of Object.entries(tasks))
        bench.add(name, fn);
    await bench.run();
    const out = {};
    for (const task of bench.tasks) {
        const result = task.result;
        if (!result.latency)
            throw new Error(`benchmark ${task.name} failed: ${JSON.stringify(task.result)}`);
        out[task.name] = result.latency.p50;
    }
    return out;
}
const round = (v, digits = 2) => Number(v.toFixed(digits));
async function benchGemm() {
    const rows = [];
    for (const n of quick ? [256, 512] : [512, 1024, 2048, 4096]) {
        const a = randomArray(n * n, 1);
        const b = randomArray(n * n, 2);
        const A = Tensor.fromTypedArray(a, [n, n]);
        const B = Tensor.fromTypedArray(b, [n, n]);
        const C = Tensor.zeros([n, n]);
        const c = new Float32Array(n * n);
        const iterations = n >= 4096 ? 3 : n >= 2048 ? 5 : 20;
        const t = await medianMs({ sparq: () => void gemm(A, B, { out: C }), openblas: () => direct.sgemm(a, b, c, n, n, n) }, { iterations, time: 200 });
        const flops = 2 * n ** 3;
        rows.push({
            op: 'sgemm', n, sparqGflops: round(flops / t.sparq / 1e6, 1), openblasGflops: round(flops / t.openblas / 1e6, 1),
            ratio: round(t.openblas / t.sparq, 3),
        });
    }
    const tokens = quick ? 512 : 2048;
    for (const n of quick ? [256, 512] : [512, 1024, 2048, 4096]) {
        const x = randomArray(tokens * n, 3);
        const X = Tensor.fromTypedArray(x, [tokens, n]);
        const H = Tensor.zeros([n, n]);
        const h = new Float32Array(n * n);
        const t = await medianMs({
            lower: () => void syrk(X, { out: H, triangle: 'lower' }),
            full: () => void syrk(X, { out: H }),
            openblas: () => direct.ssyrk(x, h, tokens, n),
        }, { iterations: n >= 4096 ? 3 : 10, time: 200 });
        const flops = n * (n + 1) * tokens; // one triangle
        rows.push({
            op: `ssyrk (T=${tokens}, lower; full: ${round(flops / t.full / 1e6, 1)} GF/s)`, n, sparqGflops: round(flops / t.lower / 1e6, 1),
            openblasGflops: round(flops / t.openblas / 1e6, 1), ratio: round(t.openblas / t.lower, 3),
        });
    }
    return rows;
}
async function benchCholesky() {
    const rows = [];
    for (const n of quick ? [256, 512] : [1024, 2048, 4096, 8192]) {
        const X = Tensor.fromTypedArray(randomArray((n + 64) * n, 4), [n + 64, n]);
        const H = syrk(X, { alpha: 1 / (n + 64) });
        const t = await medianMs({ inverse: () => void choleskyInverse(H, { damp: 0.01 }) }, { iterations: n >= 8192 ? 1 : 3, time: 0 });
        rows.push({ op: 'choleskyInverse f32 (damp 0.01)', n, seconds: round(t.inverse / 1000, 3), gflops: round(n ** 3 / t.inverse / 1e6, 1) });
    }
    return rows;
}
async function benchBandwidth() {
    const count = quick ? 1 << 22 : 1 << 26; // 256 MiB of f32: far beyond the caches
    const cols = 4096;
    const rows = count / cols;
    // Kernels write into preallocated, already touched outputs, as the copy probe does, so that page
    // faults of fresh JavaScript allocations do not count against either.
    const f32 = randomArray(count, 5);
    const f32Out = new Float32Array(count).fill(1);
    const u16 = Tensor.fromTypedArray(f32).to('f16').data;
    const b16 = Tensor.fromTypedArray(f32).to('bf16').data;
    const u16Out = new Uint16Array(count).fill(1);
    const mask = thresholdMask(Tensor.fromTypedArray(f32), 0).data;
    const maskOut = new Uint8Array(count).fill(1);
    const code = (d) => dtypeCode(d);
    const rounded = quantizeRtn(Tensor.fromTypedArray(f32, [rows, cols]), { bits: 4, groupSize: 128, symmetric: false, scaleDType: 'f32' });
    const codes4 = rounded.codes.data;
    const codesOut = new Int8Array(count).fill(1);
    const packed4 = packCodes(rounded.codes, 4).data;
    const packed4Out = new Int32Array(count / 8).fill(1);
    const scales = rounded.scales.data;
    const zeros = rounded.zeros.data;
    const scalesOut = new Float32Array(scales.length).fill(1);
    const zerosOut = new Int8Array(zeros.length).fill(1);
    const noGroups = new Int32Array(0);
    const flat = [count];
    const matrix = [rows, cols];
    const call = (name, ...args) => () => void callSync('cpu', name, args);
    const copy = call('unary', 0, f32, code('f32'), flat, f32Out, code('f32'), flat, 0, 0);
    const copyMs = (await medianMs({ copy }, { iterations: 10, time: 300 })).copy;
    const copyGBs = (2 * 4 * count) / copyMs / 1e6;
    const cases = [
        { name: 'convert f32->f16', bytes: 6 * count, run: call('convert', f32, code('f32'), flat, u16Out, code('f16'), flat) },
        { name: 'convert f32->bf16', bytes: 6 * count, run: call('convert', f32, code('f32'), flat, u16Out, code('bf16'), flat) },
        { name: 'convert f16->f32', bytes: 6 * count, run: call('convert', u16, code('f16'), flat, f32Out, code('f32'), flat) },
        { name: 'convert bf16->f32', bytes: 6 * count, run: call('convert', b16, code('bf16'), flat, f32Out, code('f32'), flat) },
        { name: `topkMask k=${cols / 2} of ${cols}`, bytes: 5 * count, run: call('topkMask', f32, code('f32'), matrix, cols / 2, true, maskOut, code('u8'), matrix) },
        { name: `topkMask k=${cols / 8} of ${cols}`, bytes: 5 * count, run: call('topkMask', f32, code('f32'), matrix, cols / 8, true, maskOut, code('u8'), matrix) },
        { name: 'nmMask 2:4', bytes: 5 * count, run: call('nmMask', f32, code('f32'), matrix, 2, 4, true, maskOut, code('u8'), matrix) },
        { name: 'nmMask 4:8', bytes: 5 * count, run: call('nmMask', f32, code('f32'), matrix, 4, 8, true, maskOut, code('u8'), matrix) },
        { name: 'thresholdMask', bytes: 5 * count, run: call('thresholdMask', f32, code('f32'), matrix, 0.5, maskOut, code('u8'), matrix) },
        { name: 'applyMask f32', bytes: 9 * count, run: call('applyMask', f32, code('f32'), flat, mask, code('u8'), flat, f32Out, code('f32'), flat) },
        // Quantization: 4-bit codes packed 8 per word (compressed-tensors), groups of 128, asymmetric.
        { name: 'packCodes 4-bit', bytes: 1.5 * count, run: call('packCodes', codes4, code('i8'), matrix, 4, packed4Out, code('i32'), [rows, cols / 8]) },
        { name: 'unpackCodes 4-bit', bytes: 1.5 * count, run: call('unpackCodes', packed4, code('i32'), [rows, cols / 8], 4, codesOut, code('i8'), matrix) },
        { name: 'dequantizePacked 4-bit g128', bytes: 4.5 * count, run: call('dequantizePacked', packed4, code('i32'), [rows, cols / 8], 4, scales, code('f32'), [rows, cols / 128], zeros, code('i8'), [rows, cols / 128], noGroups, code('i32'), [0], 128, f32Out, code('f32'), matrix) },
        { name: 'quantizeRtn 4-bit g128', bytes: 9 * count, run: call('quantizeRtn', f32, code('f32'), matrix, 4, 128, false, code('f32'), noGroups, code('i32'), [0], codesOut, code('i8'), matrix, scalesOut, code('f32'), [rows, cols / 128], zerosOut, code('i8'), [rows, cols / 128], f32Out, code('f32'), matrix) },
    ];
    const { kernelVariants, kernelVariant } = backendInfo('cpu');
    const results = {};
    try {
        for (const variant of kernelVariants) {
            setKernelVariant(variant);
            const tasks = {};
            for (const c of cases) {
                // The copy probe again just before each kernel: this VM's bandwidth drifts by ±30% within a
                // run, and a ratio is only meaningful between neighbouring measurements.
                if (variant === kernelVariant)
                    tasks[`copy before ${c.name}`] = copy;
                tasks[c.name] = c.run;
            }
            // The reference top-k sorts each row: give it fewer runs.
            results[variant] = await medianMs(tasks, { iterations: variant === 'scalar' ? 2 : 7, time: 0 });
        }
    }
    finally {
        setKernelVariant(kernelVariant);
    }
    const best = kernelVariant;
    const table = cases.map((c) => {
        const gbs = c.bytes / results[best][c.name] / 1e6;
        const neighbourCopyGBs = (2 * 4 * count) / results[best][`copy before ${c.name}`] / 1e6;
        const row = { op: c.name, [`${best} GB/s`]: round(gbs), 'of copy bandwidth': round(gbs / neighbourCopyGBs, 3) };
        for (const variant of kernelVariants)
            if (variant !== best)
                row[`speedup vs ${variant}`] = round(results[variant][c.name] / results[best][c.name], 2);
        return row;
    });
    return { copyGBs: round(copyGBs), elements: count, rows: table };
}
async function benchRoundTrip() {
    const x = Tensor.fromTypedArray(new Float32Array([1]));
    const y = Tensor.fromTypedArray(new Float32Array([0]));
    const raw = backend('cpu').axpy;
    const code = dtypeCode('f32');
    const xs = x.data;
    const ys = y.data;
    const shape = [1];
    // Per-call timers cost about as much as the call itself, so time batches of calls instead.
    const batch = 10_000;
    const t = await medianMs({
        'axpy via sparq API (1 element)': () => {
            for (let i = 0; i < batch; ++i)
                axpy(1e-9, x, y);
        },
        'axpy via raw addon call (1 element)': () => {
            for (let i = 0; i < batch; ++i)
                raw(1e-9, xs, code, shape, ys, code, shape);
        },
    }, { iterations: 50, time: 500 });
    return Object.entries(t).map(([op, ms]) => ({ op, microseconds: round((ms * 1000) / batch, 3) }));
}
const info = backendInfo('cpu');
console.log(`sparq bench on ${cpus()[0]?.model ?? 'unknown CPU'}, ${info.description}${quick ? ' (quick mode)' : ''}`);
const gemmRows = await benchGemm();
console.table(gemmRows);
const choleskyRows = await benchCholesky();
console.table(choleskyRows);
const bandwidth = await benchBandwidth();
console.log(`memory copy probe: ${bandwidth.copyGBs} GB/s (read + write, ${bandwidth.elements} f32, ${info.threads} threads)`);
console.table(bandwidth.rows);
const roundTrip = await benchRoundTrip();
console.table(roundTrip);
const results = {
    date: new Date().toISOString(),
    quick,
    machine: { cpu: cpus()[0]?.model, logicalCpus: cpus().length, backend: info, openblasCoretype: process.env.OPENBLAS_CORETYPE ?? null },
    gemm: gemmRows,
    cholesky: choleskyRows,
    bandwidth,
    roundTrip,
};
const path = new URL('../../bench/results.json', import.meta.url);
writeFileSync(path, `${JSON.stringify(results, null, 2)}\n`);
console.log(`wrote ${path.pathname}`);
//# sourceMappingURL=run.js.map
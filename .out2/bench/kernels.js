// `npm run bench:kernels`: the packed-format linear kernels against the compressed-inference targets,
// measured in one run on this machine (lib/eval/kernel-bench.ts does the timing; `sparq bench` runs the
// same code without the repository):
//   decode GEMV (M = 1) on weights of 64 MB or more: INT4 at ≥ 70% of the memory-copy roofline, 2:4 (f16)
//   ≥ 1.6× dense f16, 2:4+INT4 ≥ 1.3× INT4, BSR-INT4 at 50% block sparsity ≥ 1.6× INT4;
//   batch-16 GEMM: INT4 and 2:4+INT4 at least as fast as OpenBLAS sgemm (dense f32) on the same shapes;
//   the row top-k mask at ≥ 50% of the copy bandwidth.
// Prints the tables and writes bench/kernels-results.json. SPARQ_BENCH_QUICK=1 uses small shapes.
import { writeFileSync } from 'node:fs';
import { runKernelBench, measureCopyGBs, medianSeconds } from '../lib/eval/kernel-bench.js';
import { Tensor } from '../lib/index.js';
import { callSync } from '../lib/tensor/native.js';
const quick = process.env.SPARQ_BENCH_QUICK === '1';
const progress = (message) => process.stderr.write(`  ${message}\n`);
// GEMV: 8192 × 16384 is 64 MB of int4 codes (512 MB as f32), far beyond the caches.
const gemvShape = quick ? [1, 1024, 2048] : [1, 8192, 16384];
const gemmShapes = quick
    ? [[16, 512, 1024]]
    : [
        [16, 4096, 4096],
        [16, 11008, 4096],
    ];
const gemv = await runKernelBench({ shapes: [gemvShape], blockSize: 32, seconds: 1, onProgress: progress });
const gemv16 = await runKernelBench({ shapes: [gemvShape], formats: ['bsr-int4'], blockSize: 16, seconds: 1, onProgress: progress });
const gemm = await runKernelBench({ shapes: gemmShapes, formats: ['dense-f32', 'int4', '2:4+int4', '2:4', 'bsr-int4'], blockSize: 32, seconds: 1, onProgress: progress });
// The row top-k mask against the copy probe measured just before it (as bench/run.ts does).
function topkRatio() {
    const cols = 4096;
    const rows = quick ? 1024 : 16384;
    const scores = new Float32Array(rows * cols);
    for (let i = 0; i < scores.length; i++)
        scores[i] = Math.sin(i * 12.9898) * 43758.5453 % 1;
    const mask = new Uint8Array(rows * cols);
    const s = Tensor.fromTypedArray(scores, [rows, cols]);
    const m = Tensor.fromTypedArray(mask, [rows, cols], 'u8');
    const copyGBs = measureCopyGBs(scores.byteLength, 1);
    const seconds = medianSeconds(() => callSync('cpu', 'topkMask', [...s.nativeArgs('scores'), cols / 2, true, ...m.nativeArgs('mask')]), 1);
    // Bytes moved: the scores read and the mask written.
    const topkGBs = (scores.byteLength + mask.byteLength) / seconds / 1e9;
    return { topkGBs: +topkGBs.toFixed(2), copyGBs: +copyGBs.toFixed(2), ratio: +(topkGBs / copyGBs).toFixed(3) };
}
progress('timing the row top-k mask');
const topk = topkRatio();
function row(report, format, batch, n) {
    const found = report.rows.find((r) => r.format === format && r.batch === batch && (n === undefined || r.outFeatures === n));
    if (!found)
        throw new Error(`no ${format} row at batch ${batch}`);
    return found;
}
const targets = [
    { target: 'INT4 GEMV ≥ 70% of the copy roofline', value: row(gemv, 'int4', 1).rooflineFraction, threshold: 0.7 },
    { target: '2:4 (f16) GEMV ≥ 1.6× dense f16', value: row(gemv, '2:4', 1).speedupOverReference, threshold: 1.6 },
    { target: '2:4+INT4 GEMV ≥ 1.3× INT4', value: row(gemv, '2:4+int4', 1).speedupOverReference, threshold: 1.3 },
    { target: 'BSR-INT4 (blocks of 32, 50%) GEMV ≥ 1.6× INT4', value: row(gemv, 'bsr-int4', 1).speedupOverReference, threshold: 1.6 },
    { target: 'BSR-INT4 (blocks of 16, 50%) GEMV ≥ 1.6× INT4', value: row(gemv16, 'bsr-int4', 1).speedupOverReference, threshold: 1.6 },
    ...gemmShapes.flatMap(([m, n, k]) => [
        { target: `INT4 GEMM M=${m} ${n}×${k} ≥ OpenBLAS sgemm`, value: row(gemm, 'int4', m, n).speedupOverDenseF32, threshold: 1 },
        { target: `2:4+INT4 GEMM M=${m} ${n}×${k} ≥ OpenBLAS sgemm`, value: row(gemm, '2:4+int4', m, n).speedupOverDenseF32, threshold: 1 },
    ]),
    { target: 'row top-k mask ≥ 50% of copy bandwidth', value: topk.ratio, threshold: 0.5 },
].map((t) => ({ ...t, met: t.value !== null && t.value >= t.threshold }));
const table = (report) => report.rows.map((r) => ({
    format: r.format,
    'M,N,K': `${r.batch},${r.outFeatures},${r.inFeatures}`,
    'weight MB': +(r.weightBytes / 1e6).toFixed(1),
    ms: +(r.seconds * 1e3).toFixed(3),
    'GFLOP/s': r.gflops,
    'GB/s': r.weightGBs,
    'of roofline': r.rooflineFraction,
    '× dense f32': r.speedupOverDenseF32,
    '× reference': r.reference === r.format ? '' : `${r.speedupOverReference} vs ${r.reference}`,
}));
console.log(`memory copy probe: ${gemv.copyGBs} GB/s (read + write), ${gemv.machine.description}`);
console.log('decode GEMV (M = 1):');
console.table(table(gemv));
console.table(table(gemv16));
console.log('batched GEMM:');
console.table(table(gemm));
console.log(`row top-k mask: ${topk.topkGBs} GB/s vs copy ${topk.copyGBs} GB/s = ${topk.ratio}`);
console.table(targets);
writeFileSync(new URL('../../bench/kernels-results.json', import.meta.url), `${JSON.stringify({ date: new Date().toISOString(), quick, machine: gemv.machine, gemv, gemv16, gemm, topk, targets }, null, 2)}\n`);
//# sourceMappingURL=kernels.js.map
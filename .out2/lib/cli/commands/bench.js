import { parseArgs } from 'node:util';
import { DEFAULT_KERNEL_BENCH, KERNEL_FORMATS, runKernelBenchOnVariant } from '../../eval/kernel-bench.js';
import { backendInfo, setThreads } from '../../tensor/native.js';
import { InvalidArgumentError } from '../../errors.js';
import { parseFlags, positiveInteger, positiveNumber } from '../command.js';
function parseShape(text) {
    const parts = text.split(/[,x]/).map((p) => Number(p.trim()));
    if (parts.length !== 3 || !parts.every((d) => Number.isSafeInteger(d) && d > 0)) {
        throw new InvalidArgumentError(`bench: --shapes takes M,N,K (tokens, outputs, inputs), e.g. 1,4096,4096; got '${text}'`);
    }
    return parts;
}
function parseFormats(text) {
    const formats = text.split(',').map((f) => f.trim());
    for (const f of formats) {
        if (!KERNEL_FORMATS.includes(f))
            throw new InvalidArgumentError(`bench: unknown format '${f}' in --formats (known: ${KERNEL_FORMATS.join(', ')})`);
    }
    return formats;
}
function printTable(report) {
    const m = report.machine;
    process.stdout.write(`sparq ${report.sparqVersion} kernel bench: ${m.cpuModel}, ${m.threads} threads, ${m.backend} ${m.kernelVariant}; memory copy ${report.copyGBs} GB/s (read + write)\n`);
    const header = ['format', 'M', 'N', 'K', 'weight MB', 'ms', 'GFLOP/s', 'GB/s', '% roofline', '× dense f32', '× reference'];
    const lines = report.rows.map((r) => [
        r.format,
        String(r.batch),
        String(r.outFeatures),
        String(r.inFeatures),
        (r.weightBytes / 1e6).toFixed(1),
        (r.seconds * 1e3).toFixed(3),
        String(r.gflops),
        String(r.weightGBs),
        `${(r.rooflineFraction * 100).toFixed(0)}%`,
        r.speedupOverDenseF32 === null ? '' : r.speedupOverDenseF32.toFixed(2),
        r.speedupOverReference === null || r.reference === r.format ? '' : `${r.speedupOverReference.toFixed(2)} (vs ${r.reference})`,
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
    const row = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
    process.stdout.write(`${row(header)}\n${lines.map(row).join('\n')}\n`);
}
export const benchCommand = {
    name: 'bench',
    usage: `bench [--shapes M,N,K ...] [--formats F,...] [--group-size G] [--block-size B] [--block-sparsity S]
        [--seconds S] [--threads N] [--variant V] [--device cpu|cuda] [--json]
    times y = x·Wᵀ for weights in each format on this machine's CPU (or CUDA) backend: M tokens per call
    (M=1 is decode), W [N, K]. Formats: ${KERNEL_FORMATS.join(', ')} (synthetic weights:
    random codes, 2:4 and block patterns). Prints GFLOP/s, the weight's bytes read per second, that
    rate as a share of the measured memory-copy bandwidth, and speed-ups over dense f32 and over the
    format each one is meant to beat. --json prints one object (schema sparq.kernel-bench/1, see README).
    Defaults: --shapes ${DEFAULT_KERNEL_BENCH.shapes.map((s) => s.join(',')).join(' --shapes ')} --group-size ${DEFAULT_KERNEL_BENCH.groupSize}
    --block-size ${DEFAULT_KERNEL_BENCH.blockSize} --block-sparsity ${DEFAULT_KERNEL_BENCH.blockSparsity} --seconds ${DEFAULT_KERNEL_BENCH.seconds}; --variant: one of this CPU's kernel
    variants (sparq info), default the best.`,
    async run(args) {
        const { values } = parseFlags('bench', () => parseArgs({
            args,
            strict: true,
            options: {
                shapes: { type: 'string', multiple: true },
                formats: { type: 'string' },
                'group-size': { type: 'string' },
                'block-size': { type: 'string' },
                'block-sparsity': { type: 'string' },
                seconds: { type: 'string' },
                threads: { type: 'string' },
                variant: { type: 'string' },
                device: { type: 'string', default: 'cpu' },
                json: { type: 'boolean', default: false },
            },
        }));
        const threads = positiveInteger('bench', 'threads', values.threads);
        if (threads !== undefined)
            setThreads(threads);
        const device = values.device;
        if (device !== 'cpu' && device !== 'cuda')
            throw new InvalidArgumentError(`bench: --device must be cpu or cuda, got '${device}'`);
        const info = backendInfo(device);
        const variant = values.variant ?? info.kernelVariant;
        if (!info.kernelVariants.includes(variant))
            throw new InvalidArgumentError(`bench: --variant '${variant}' is not one of this CPU's kernel variants (${info.kernelVariants.join(', ')})`);
        const sparsity = positiveNumber('bench', 'block-sparsity', values['block-sparsity']);
        if (sparsity !== undefined && sparsity >= 1)
            throw new InvalidArgumentError(`bench: --block-sparsity must be below 1, got ${sparsity}`);
        const report = await runKernelBenchOnVariant(variant, {
            shapes: values.shapes?.flatMap((s) => s.split(/\s+/).filter(Boolean)).map(parseShape),
            formats: values.formats === undefined ? undefined : parseFormats(values.formats),
            groupSize: positiveInteger('bench', 'group-size', values['group-size'], 4),
            blockSize: positiveInteger('bench', 'block-size', values['block-size'], 8),
            blockSparsity: sparsity,
            seconds: positiveNumber('bench', 'seconds', values.seconds, 0.001),
            device,
            onProgress: values.json ? undefined : (message) => process.stderr.write(`  ${message}\n`),
        });
        if (values.json)
            process.stdout.write(`${JSON.stringify(report)}\n`);
        else
            printTable(report);
    },
};
//# sourceMappingURL=bench.js.map
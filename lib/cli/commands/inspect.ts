import { parseArgs } from 'node:util';
import { UsageError } from '../../errors.js';
import { inspectModel } from '../../models/inspect.js';
import { parseFlags, type Command } from '../command.js';
import { progressBar } from '../progress.js';

export const inspectCommand: Command = {
  name: 'inspect',
  usage: `inspect DIR [--json]
                   architecture, parameter count, dtypes, bytes, and each linear layer's format
                   (dense, compressed-tensors pack-quantized with bits, group size, symmetry, or
                   float-quantized FP8) and sparsity; for mixture-of-experts models each routed
                   expert's width (its kept width after expert pruning, 0 for a removed expert);
                   --json adds each layer's widths (layers: intermediateSize, heads, kvHeads), which
                   differ per layer after structured pruning`,
  async run(args) {
    const { values, positionals } = parseFlags('inspect', () => parseArgs({ args, strict: true, allowPositionals: true, options: { json: { type: 'boolean', default: false } } }));
    if (positionals.length !== 1) throw new UsageError('inspect: give exactly one model folder');
    const bar = progressBar('inspect');
    const report = await inspectModel(positionals[0], { onProgress: (done, total) => bar.update(done, total, 'linears') }).finally(() => bar.done());
    if (values.json) {
      // The expert-width record is a Map in the config; `experts` carries it in JSON.
      process.stdout.write(`${JSON.stringify({ ...report, config: { ...report.config, expertWidths: undefined } })}\n`);
      return;
    }
    const c = report.config;
    process.stdout.write(
      `${report.dir}: ${c.architecture}, ${c.layers} layers, hidden ${c.hiddenSize}, ${c.heads} heads / ${c.kvHeads} kv (head_dim ${c.headDim}), ` +
        `vocab ${c.vocabSize}\n${report.parameters.toLocaleString('en-US')} parameters, ${(report.bytes / 2 ** 20).toFixed(1)} MiB, dtypes ${JSON.stringify(report.dtypes)}\n`,
    );
    if (c.layerWidths) process.stdout.write(`per-layer widths (mlp/heads/kv): ${report.layers.map((l) => `${l.intermediateSize}/${l.heads}/${l.kvHeads}`).join(' ')}\n`);
    if (c.moe) {
      const m = c.moe;
      const shared = m.shared ? `, a shared expert of ${m.shared.size}${m.shared.gated ? ' (sigmoid-gated)' : ''}` : '';
      process.stdout.write(`MoE layers ${m.layers.join(', ')}: ${m.experts} experts of ${m.expertSize}, top-${m.topK}${m.normalizeTopK ? ' renormalized' : ''}${shared}\n`);
    }
    for (const l of report.linears) {
      const grid = l.format === 'float-quantized' ? '  FP8 E4M3 per channel' : l.format === 'pack-quantized' ? `  W${l.bits} ${l.groupSize === null ? 'per channel' : `group ${l.groupSize}`}${l.symmetric ? '' : ' asymmetric'}${l.actOrder ? ` act-order ${l.actOrder}` : ''}` : '';
      process.stdout.write(`  ${l.name.padEnd(48)} [${l.shape.join(', ')}]  sparsity ${(100 * l.sparsity).toFixed(2)}%${grid}\n`);
    }
    for (const e of report.experts ?? []) {
      process.stdout.write(`  layer ${e.layer} routed experts (stored width ${e.stored}): kept widths ${e.kept.join(' ')}${e.kept.includes(0) ? ' (0: removed, router masked)' : ''}\n`);
    }
  },
};

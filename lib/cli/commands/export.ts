import { parseArgs } from 'node:util';
import { InvalidArgumentError, UsageError } from '../../errors.js';
import { exportPacked, type ExportSummary } from '../../export/packed-folder.js';
import { PACKED_FORMATS, type PackedFormat } from '../../tensor/packed.js';
import { parseFlags, positiveInteger, withInterrupt, type Command } from '../command.js';
import { progressBar } from '../progress.js';

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(2)} MiB`;

/** The summary on stdout: each storage's linears, bytes before and after, and the whole folder. */
function printSummary(summary: ExportSummary): void {
  const lines = [`sparq export: ${summary.model} -> ${summary.out} as ${summary.format}${summary.blockSize ? ` (blocks of ${summary.blockSize})` : ''} in ${summary.seconds.toFixed(1)}s`];
  for (const [format, b] of Object.entries(summary.byFormat)) {
    lines.push(`  ${format.padEnd(9)} ${String(b.linears).padStart(4)} linears  ${mib(b.bytesBefore)} -> ${mib(b.bytesAfter)} (${(b.bytesAfter / b.bytesBefore).toFixed(3)}x)`);
  }
  lines.push(`  safetensors files  ${mib(summary.fileBytesBefore)} -> ${mib(summary.fileBytesAfter)}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

export const exportCommand: Command = {
  name: 'export',
  usage: `export --model DIR --format int4|2:4|2:4+int4|bsr|bsr-int4 [--block-size 8|16|32] --out DIR
        [--overwrite] [--json]
                   packs every block linear of a model folder into a sparq packed format (README:
                   "Packed folders"): 2:4 and bsr from a pruned dense folder; int4, 2:4+int4
                   (2:4-sparse codes) and bsr-int4 (symmetric, group size = --block-size, default
                   16) from a compressed-tensors W4 folder. Embeddings, norms, biases and lm_head
                   are copied unchanged. A weight that does not fit is refused by name. Streams
                   block by block with progress on stderr, writes atomically, and prints bytes
                   before/after per format (--json: the summary as one JSON object)`,
  async run(args) {
    const { values } = parseFlags('export', () =>
      parseArgs({
        args,
        strict: true,
        options: {
          model: { type: 'string' },
          format: { type: 'string' },
          'block-size': { type: 'string' },
          out: { type: 'string' },
          overwrite: { type: 'boolean', default: false },
          json: { type: 'boolean', default: false },
        },
      }),
    );
    if (!values.model) throw new UsageError('export: --model DIR is required');
    if (!values.out) throw new UsageError('export: --out DIR is required');
    if (!values.format || !(PACKED_FORMATS as readonly string[]).includes(values.format)) {
      throw new InvalidArgumentError(`export: --format must be one of ${PACKED_FORMATS.join(', ')}, got ${values.format === undefined ? 'nothing' : `'${values.format}'`}`);
    }
    const blockSize = positiveInteger('export', 'block-size', values['block-size']);
    const bar = progressBar('sparq export');
    const summary = await withInterrupt((signal) =>
      exportPacked({
        model: values.model!,
        out: values.out!,
        format: values.format as PackedFormat,
        blockSize,
        overwrite: values.overwrite,
        signal,
        onProgress: (p) => bar.update(p.step, p.steps, p.name),
      }),
    ).finally(() => bar.done());
    if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else printSummary(summary);
  },
};

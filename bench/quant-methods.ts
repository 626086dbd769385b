// `npm run bench:quant-methods`: the seed quantization methods GWQ and HWPQ against their baselines, on
// stories260K, sotu-llama and (when cached) the demo's trained model.
//   GWQ    W3 and W4, groups of 32 (the same for every row): RTN, GPTQ, and 1% outliers over a base of RTN
//          or GPTQ chosen by each score — gradient |∂L/∂W| (the paper's), fisher Σ_w g_w², gradient-weight
//          |w|·Σ_w|g_w|, magnitude |W| (the ablation) — all from the same calibration windows; bits
//          per weight include the outliers' f16 values, column indices and row pointers
//   HWPQ   50% unstructured and 2:4, each + W4 g32, against SparseGPT (one joint sweep) and Wanda + RTN;
//          W4 alone against GPTQ; FP8 E4M3 per channel; seconds in the method itself per linear
//          (stageSeconds.compress / linears), in capturing its statistics, and the whole run
// Calibration 64×256 windows of the shared calibration text (the demo model: the end of its training
// text), the gradient pass on the first 16; perplexity on the first 32,768 eval tokens in windows of 256.
// SPARQ_BENCH_MODELS=stories,sotu,demo picks models (by name prefix); SPARQ_BENCH_ROWS=label,label picks
// rows by label prefix (e.g. "W3 gwq fisher,W4 rtn"); SPARQ_BENCH_OUT names the results file (default
// bench/quant-methods-results.json). Rows of a run replace the same rows (model, scheme, method) in that
// file and keep the others, so a partial run updates it.
// Timings share 2 busy cores with other work: compare rows of one run, not runs. Writes
// bench/quant-methods-results.json and prints each row.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecoderModel, evaluatePerplexity, loadTokenizer, parseRecipe, quantize, sampleWindows } from '../lib/index.js';
import { defaultCacheDir } from '../lib/demo/demo.js';
import { loadSotuText } from '../lib/demo/dataset.js';
import { repo } from './util.js';

const shared = join(repo, '..', 'shared');
const scratch = mkdtempSync(join(tmpdir(), 'sparq-bench-quant-methods-'));

interface BenchModel {
  name: string;
  dir: string;
  calibText: string;
  evalText: string;
}

function models(): BenchModel[] {
  const list: BenchModel[] = [
    { name: 'stories260K', dir: join(shared, 'fixtures', 'stories260K'), calibText: readFileSync(join(shared, 'data', 'tinystories_calib.txt'), 'utf8'), evalText: readFileSync(join(shared, 'data', 'tinystories_val.txt'), 'utf8') },
    { name: 'sotu-llama', dir: join(shared, 'fixtures', 'sotu-llama'), calibText: readFileSync(join(shared, 'data', 'sotu_calib.txt'), 'utf8'), evalText: readFileSync(join(shared, 'data', 'sotu_eval.txt'), 'utf8') },
  ];
  const demoRoot = join(defaultCacheDir(), 'demo');
  const demo = existsSync(demoRoot) ? readdirSync(demoRoot).find((d) => d.startsWith('sotu-llama-') && existsSync(join(demoRoot, d, 'training.json')) && JSON.parse(readFileSync(join(demoRoot, d, 'config.json'), 'utf8')).hidden_size === 256) : undefined;
  if (demo) {
    const text = loadSotuText();
    list.push({ name: 'demo sotu-llama (3.7M)', dir: join(demoRoot, demo), calibText: text.train.slice(-400_000), evalText: text.eval });
  }
  const only = process.env.SPARQ_BENCH_MODELS?.split(',');
  return only ? list.filter((m) => only.some((o) => m.name.startsWith(o))) : list;
}

const G = 32;
const SCORES = ['gradient', 'fisher', 'gradient-weight', 'fisher-error', 'magnitude'] as const;
const GWQ_ROWS: { label: string; recipe: (bits: number) => Record<string, unknown> }[] = [
  { label: 'rtn', recipe: (bits) => ({ method: 'rtn', quantize: { bits, groupSize: G } }) },
  { label: 'gptq', recipe: (bits) => ({ method: 'gptq', quantize: { bits, groupSize: G } }) },
  ...(['rtn', 'gptq'] as const).flatMap((base) =>
    SCORES.map((select) => ({ label: `gwq ${select} / ${base}`, recipe: (bits: number) => ({ method: 'gwq', options: { base, select }, quantize: { bits, groupSize: G } }) })),
  ),
];
const HWPQ_ROWS: { label: string; recipe: Record<string, unknown> }[] = [
  { label: 'hwpq 50% + W4 g32', recipe: { method: 'hwpq', sparsity: 0.5, quantize: { bits: 4, groupSize: G } } },
  { label: 'sparsegpt 50% + W4 g32', recipe: { method: 'sparsegpt', sparsity: 0.5, quantize: { bits: 4, groupSize: G } } },
  { label: 'wanda 50% + rtn W4 g32', recipe: { method: 'wanda', sparsity: 0.5, quantize: { bits: 4, groupSize: G } } },
  { label: 'hwpq 2:4 + W4 g32', recipe: { method: 'hwpq', sparsity: '2:4', quantize: { bits: 4, groupSize: G } } },
  { label: 'sparsegpt 2:4 + W4 g32', recipe: { method: 'sparsegpt', sparsity: '2:4', quantize: { bits: 4, groupSize: G } } },
  { label: 'hwpq W4 g32 (no pruning)', recipe: { method: 'hwpq', quantize: { bits: 4, groupSize: G } } },
  { label: 'gptq W4 g32', recipe: { method: 'gptq', quantize: { bits: 4, groupSize: G } } },
  { label: 'hwpq fp8 e4m3 per channel', recipe: { method: 'hwpq', quantize: { bits: 8, groupSize: 0 }, options: { format: 'fp8' } } },
  { label: 'hwpq 50% + fp8', recipe: { method: 'hwpq', sparsity: 0.5, quantize: { bits: 8, groupSize: 0 }, options: { format: 'fp8' } } },
];

const round = (x: number, digits = 3) => Number(x.toFixed(digits));

/** README's GWQ table: one line per model and grid, perplexity per method (the best in bold), — where not run. */
function gwqMarkdown(rows: Record<string, unknown>[]): string {
  const columns = GWQ_ROWS.map((r) => r.label);
  const lines = [`| model (dense ppl) | grid | bits/weight (→ +1% outliers) | ${columns.join(' | ')} |`, `|---|---|---|${columns.map(() => '---:').join('|')}|`];
  const groups = new Map<string, Record<string, unknown>[]>();
  for (const r of rows) groups.set(`${r.model}|${r.scheme}`, [...(groups.get(`${r.model}|${r.scheme}`) ?? []), r]);
  for (const group of groups.values()) {
    const byMethod = new Map(group.map((r) => [r.method as string, r]));
    const best = Math.min(...group.map((r) => r.perplexity as number));
    const bits = (label: string) => byMethod.get(label)?.bitsPerWeight;
    const cells = columns.map((c) => {
      const p = byMethod.get(c)?.perplexity as number | undefined;
      return p === undefined ? '—' : p === best ? `**${p.toFixed(3)}**` : p.toFixed(3);
    });
    lines.push(`| ${group[0].model} (${group[0].dense}) | ${group[0].scheme} | ${bits('rtn') ?? '—'} → ${bits('gwq magnitude / rtn') ?? '—'} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}
const rowFilter = process.env.SPARQ_BENCH_ROWS?.split(',');
const wanted = (label: string) => !rowFilter || rowFilter.some((r) => label.startsWith(r));

try {
  const gwqTable: Record<string, unknown>[] = [];
  const hwpqTable: Record<string, unknown>[] = [];
  for (const m of models()) {
    const tokenizer = await loadTokenizer(m.dir);
    const windows = sampleWindows(tokenizer.encode(m.calibText), { nsamples: 64, seqLen: 256, seed: 0 });
    const evalTokens = tokenizer.encode(m.evalText).slice(0, 32768);
    const perplexity = async (dir: string) => {
      const model = await DecoderModel.open(dir);
      try {
        return round((await evaluatePerplexity(model, evalTokens, { seqLen: 256 })).perplexity);
      } finally {
        await model.close();
      }
    };
    const run = async (recipe: Record<string, unknown>) => {
      const out = join(scratch, 'out');
      const report = await quantize({ model: m.dir, out, overwrite: true, format: 'dense', recipe: parseRecipe(recipe), calibrationWindows: windows, measureError: false });
      const t = report.totals;
      return {
        perplexity: await perplexity(out),
        bitsPerWeight: round(t.bitsPerWeight ?? 0),
        seconds: round(t.seconds, 2),
        compressSecondsPerLinear: round(t.stageSeconds.compress / report.linears.length, 4),
        captureSeconds: round(t.stageSeconds.capture, 2),
        gradientSeconds: round(t.stageSeconds.gradients, 2),
      };
    };
    const dense = await perplexity(m.dir);
    for (const bits of [3, 4]) {
      for (const row of GWQ_ROWS.filter((r) => wanted(`W${bits} ${r.label}`))) {
        const r = { model: m.name, dense, scheme: `W${bits} g${G}`, method: row.label, ...(await run(row.recipe(bits))) };
        console.log(JSON.stringify(r));
        gwqTable.push(r);
      }
    }
    for (const row of HWPQ_ROWS.filter((r) => wanted(r.label))) {
      const r = { model: m.name, dense, method: row.label, ...(await run(row.recipe)) };
      console.log(JSON.stringify(r));
      hwpqTable.push(r);
    }
  }
  const file = process.env.SPARQ_BENCH_OUT ?? join(repo, 'bench', 'quant-methods-results.json');
  const old = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
  const key = (r: Record<string, unknown>) => `${r.model}|${r.scheme ?? ''}|${r.method}`;
  const merge = (before: Record<string, unknown>[] | undefined, now: Record<string, unknown>[]) => {
    const fresh = new Map(now.map((r) => [key(r), r]));
    const kept = (before ?? []).map((r) => fresh.get(key(r)) ?? r);
    const seen = new Set(kept.map(key));
    return [...kept, ...now.filter((r) => !seen.has(key(r)))];
  };
  const results = { date: new Date().toISOString(), cpu: cpus()[0]?.model, calibration: '64×256 (gradients: first 16)', eval: '32,768 tokens, windows of 256', gwq: merge(old.gwq, gwqTable), hwpq: merge(old.hwpq, hwpqTable) };
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(gwqMarkdown(results.gwq));
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

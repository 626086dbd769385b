// `npm run bench:gqsa-ablation`: where GQSA's loss comes from — the group structure, or the way the kept
// weights are updated. Same protocol as bench/gqsa.ts (calibration 32×128 tokens seed 0; perplexity on the
// first 16,384 eval tokens in windows of 128; stories260K's down_proj left dense), 50% sparsity everywhere.
//
//   unstructured  magnitude, wanda, sparsegpt at 50% and sparsegpt 2:4 (no quantization): what the same
//                 amount of pruning costs without the group structure.
//   groups        an ablation method registered for this bench only, built from gqsa.ts's own pieces
//                 (chooseGroups, solveKeptGroups, sweepGroups): groups of g inputs, the lowest-saliency
//                 half of each row's groups pruned, then
//                   update 'none'   the pruned groups zeroed, nothing else
//                   update 'sweep'  the OBS column sweep with the mask fixed (gqsa's update before this bench)
//                   update 'solve'  each row's least-squares optimum for the mask (gqsa's default now)
//                 unquantized (the sweep's rounding left out, float64) or W4 with the same groups (gqsa itself).
//   layer check   for every linear of the unquantized g16 runs, ‖(W − Ŵ)X‖²/‖WX‖² of all three updates on the
//                 SAME calibration inputs (the 'none' run's): a correct sweep is never above 'none', and the
//                 solve (the optimum for the mask) never above either.
// SPARQ_BENCH_GQSA_MODELS=stories260K,sotu-llama,demo picks models (default stories260K,sotu-llama).
// Writes bench/gqsa-ablation-results.json.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { chooseGroups, compressModel, METHODS, parseRecipe, solveKeptGroups, sweepGroups, Tensor, type CompressionMethod } from '../lib/index.js';
import { fixDeadInputs, inverseFactor } from '../lib/compress/hessian.js';
import { GQSA_MODELS, gqsaProtocol } from './gqsa-models.js';
import { benchEvalTokens, repo } from './util.js';

type Update = 'none' | 'sweep' | 'solve';
interface AblationOptions {
  update: Update;
  bits: 0 | 4;
  groupSize: number;
  saliency: 'hessian' | 'obs-group' | 'wanda' | 'magnitude';
  check: boolean;
}

/** The OBS column sweep with the group mask fixed and no rounding (float64): pruned → 0, error onto the later columns through U. */
function sweepUnquantized(w: Float32Array, rows: number, n: number, u: Float32Array, kept: Uint8Array, g: number): Float32Array {
  const W = Float64Array.from(w);
  const out = new Float32Array(rows * n);
  const groups = n / g;
  for (let j = 0; j < n; ++j) {
    const d = u[j * n + j];
    for (let r = 0; r < rows; ++r) {
      const at = r * n + j;
      if (kept[r * groups + Math.floor(j / g)]) {
        out[at] = W[at];
        continue;
      }
      const e = W[at] / d;
      for (let k = j + 1; k < n; ++k) W[r * n + k] -= e * u[j * n + k];
    }
  }
  return out;
}

/** ‖(W − Ŵ)X‖²/‖WX‖² through H (float64). */
function layerError(w: Float32Array, what: Float32Array, h: Float32Array, rows: number, n: number): number {
  let num = 0;
  let den = 0;
  const d = new Float64Array(n);
  for (let r = 0; r < rows; ++r) {
    for (let j = 0; j < n; ++j) d[j] = w[r * n + j] - what[r * n + j];
    for (let a = 0; a < n; ++a) {
      let hd = 0;
      let hw = 0;
      for (let b = 0; b < n; ++b) {
        hd += h[a * n + b] * d[b];
        hw += h[a * n + b] * w[r * n + b];
      }
      num += d[a] * hd;
      den += w[r * n + a] * hw;
    }
  }
  return num / den;
}

const ablation: CompressionMethod<AblationOptions> = {
  name: 'gqsa-ablation',
  summary: 'bench only: group pruning with a chosen update, quantized or not',
  needs: { hessian: true },
  scope: 'linear',
  prunes: true,
  requiresSparsity: true,
  quantizes: () => true,
  fallback: 'magnitude',
  parseOptions: (raw) => ({ update: 'solve', bits: 0, groupSize: 16, saliency: 'hessian', check: false, ...(raw as Partial<AblationOptions>) }),
  async compress({ weight, pattern, stats, options: o }) {
    const [rows, n] = weight.shape;
    const { hessian, deadInputs } = await fixDeadInputs(stats!.hessian!, weight);
    const { factor, report } = await inverseFactor(hessian, 0.01, deadInputs);
    const g = o.groupSize;
    const kept = chooseGroups(weight, hessian, factor, g, pattern!.kind === 'unstructured' ? pattern!.sparsity : 0.5, { saliency: o.saliency, selection: 'row' });
    const w = weight.data as Float32Array;
    const masked = () => Float32Array.from(w, (x, i) => (kept[Math.floor(i / n) * (n / g) + Math.floor((i % n) / g)] ? x : 0));
    const solved = async () => (await solveKeptGroups(weight, hessian, report.dampingAbsolute, kept, g, { maxIterations: 100 })).weight;
    let result: Float32Array;
    if (o.bits === 0) {
      result = o.update === 'none' ? masked() : o.update === 'sweep' ? sweepUnquantized(w, rows, n, factor.data as Float32Array, kept, g) : ((await solved()).data as Float32Array);
    } else {
      const start = o.update === 'solve' ? await solved() : o.update === 'none' ? Tensor.fromTypedArray(masked(), [rows, n]) : weight;
      const identity = Tensor.fromTypedArray(Float32Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0)), [n, n]);
      // 'none' + W4: round to nearest on the kept groups (an identity factor moves no error).
      result = (await sweepGroups(start, o.update === 'none' ? identity : factor, kept, { bits: 4, groupSize: g, symmetric: true }, 'f32')).weight.data as Float32Array;
    }
    const details: Record<string, number> = {};
    if (o.check) {
      const h = Float32Array.from(hessian.data as Float32Array, (x, i) => (i % (n + 1) === 0 ? x + report.dampingAbsolute : x));
      details.errorNone = layerError(w, masked(), h, rows, n);
      details.errorSweep = layerError(w, sweepUnquantized(w, rows, n, factor.data as Float32Array, kept, g), h, rows, n);
      details.errorSolve = layerError(w, (await solved()).data as Float32Array, h, rows, n);
    }
    return { weight: Tensor.fromTypedArray(result, [rows, n]), details };
  },
};
METHODS['gqsa-ablation'] = ablation;

const chosen = (process.env.SPARQ_BENCH_GQSA_MODELS ?? 'stories260K,sotu-llama').split(',');

const group = (label: string, options: Partial<AblationOptions>) => ({ label, recipe: { method: 'gqsa-ablation', sparsity: 0.5, options } });
const gqsa = (label: string, options: Record<string, unknown>) => ({ label, recipe: { method: 'gqsa', sparsity: 0.5, quantize: { bits: 4, groupSize: 16 }, options } });
const VARIANTS: { label: string; recipe: Record<string, unknown> }[] = [
  { label: 'magnitude 50% unstructured', recipe: { method: 'magnitude', sparsity: 0.5 } },
  { label: 'wanda 50% unstructured', recipe: { method: 'wanda', sparsity: 0.5 } },
  { label: 'sparsegpt 50% unstructured', recipe: { method: 'sparsegpt', sparsity: 0.5 } },
  { label: 'sparsegpt 2:4', recipe: { method: 'sparsegpt', sparsity: '2:4' } },
  group('g16 none (zeroed)', { update: 'none', check: true }),
  group('g16 sweep', { update: 'sweep' }),
  group('g16 solve', { update: 'solve' }),
  group('g8 solve', { update: 'solve', groupSize: 8 }),
  group('g4 solve', { update: 'solve', groupSize: 4 }),
  group('g1 solve (per-row 50%, fixed mask)', { update: 'solve', groupSize: 1 }),
  group('g16 none + W4 (RTN)', { update: 'none', bits: 4 }),
  gqsa('gqsa W4 g16 sweep (previous default)', { update: 'sweep' }),
  gqsa('gqsa W4 g16 solve (default)', {}),
  gqsa('gqsa W4 g16 solve, saliency obs-group', { saliency: 'obs-group' }),
  gqsa('gqsa W4 g16 solve, saliency wanda', { saliency: 'wanda' }),
  gqsa('gqsa W4 g16 solve, saliency magnitude', { saliency: 'magnitude' }),
];

const results: Record<string, unknown>[] = [];
for (const name of chosen) {
  const m = GQSA_MODELS[name];
  const tokens = m && (await benchEvalTokens(name, m, 16384));
  if (!m?.dir || !tokens) continue;
  const row: Record<string, unknown> = { model: name };
  for (const v of VARIANTS) {
    const start = performance.now();
    const report = await compressModel({
      model: m.dir,
      out: join(tmpdir(), `sparq-bench-gqsa-ablation-${name}`),
      overwrite: true,
      recipe: parseRecipe({ ...v.recipe, ...(m.ignore ? { ignore: m.ignore } : {}) }),
      format: 'dense',
      ...gqsaProtocol(m, tokens),
      measureError: true,
    });
    row.dense ??= report.perplexityBefore;
    const errors = report.linears.map((l) => l.relativeError ?? NaN);
    const entry: Record<string, unknown> = {
      perplexity: Number(report.perplexityAfter!.toFixed(3)),
      meanLayerError: Number((errors.reduce((a, b) => a + b, 0) / errors.length).toFixed(4)),
      seconds: Number(((performance.now() - start) / 1000).toFixed(1)),
    };
    if (report.linears[0]?.details?.errorNone !== undefined) {
      const layers = report.linears.map((l) => ({ name: l.name, none: l.details!.errorNone as number, sweep: l.details!.errorSweep as number, solve: l.details!.errorSolve as number }));
      entry.sameInputs = {
        sweepNotAboveNone: `${layers.filter((l) => l.sweep <= l.none).length}/${layers.length}`,
        solveNotAboveSweep: `${layers.filter((l) => l.solve <= l.sweep * (1 + 1e-4)).length}/${layers.length}`,
        meanError: Object.fromEntries((['none', 'sweep', 'solve'] as const).map((k) => [k, Number((layers.reduce((a, l) => a + l[k], 0) / layers.length).toFixed(4))])),
        layers: layers.map((l) => [l.name.replace('model.layers.', ''), ...[l.none, l.sweep, l.solve].map((x) => Number(x.toFixed(4)))]),
      };
    }
    row[v.label] = entry;
    console.error(`${name}: ${v.label}: ppl ${entry.perplexity}, mean layer error ${entry.meanLayerError} (${entry.seconds}s)`);
  }
  results.push(row);
}

const file = join(repo, 'bench', 'gqsa-ablation-results.json');
const previous = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
const merged = {
  date: new Date().toISOString(),
  loadAverage: loadavg().map((x) => Number(x.toFixed(2))),
  calibration: { nsamples: 32, seqLen: 128, seed: 0 },
  eval: { tokens: 16384, seqLen: 128 },
  sparsity: 0.5,
  results: [...(previous.results ?? []).filter((r: { model: string }) => !results.some((q) => q.model === r.model)), ...results],
};
writeFileSync(file, `${JSON.stringify(merged, null, 2)}\n`);
console.log(JSON.stringify(merged, null, 2));

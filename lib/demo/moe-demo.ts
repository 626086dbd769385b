// `sparq demo --moe`: expert pruning on a small mixture-of-experts model, the way `sparq demo` shows the
// layer-wise methods on its Llama.
//   1. State-of-the-Union text and a byte-level BPE tokenizer, as the Llama demo (dataset.ts, bpe.ts);
//   2. a Qwen3-MoE-shaped model (every layer MoE, 8 experts, top-2, renormalized) trained from scratch by
//      sparq's trainer with the router load-balancing loss, cached under the user's cache folder;
//   3. the routed experts pruned at several fractions of their parameters by HEAPr (global and per-layer),
//      activation-ranked atoms and frequency-based expert dropping — one statistics pass (forward +
//      backward) over the calibration windows serves every method and fraction;
//   4. each result's perplexity on the eval text: a table, report.json and an SVG chart.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExpertRanking, ExpertStatistics } from '../compress/expert-pruning.js';
import { evaluatePerplexity } from '../eval/perplexity.js';
import { StagingFolder } from '../export/staging.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { DecoderModel } from '../models/decoder.js';
import { inspectModel } from '../models/inspect.js';
import { sampleWindows } from '../pipeline/calibration.js';
import { pruneExperts } from '../pipeline/expert-prune.js';
import { gatherExpertStatistics, moeLayers } from '../pipeline/expert-statistics.js';
import { sparqVersion } from '../version.js';
import { loadSotuText } from './dataset.js';
import { defaultCacheDir, lastBytes, trainDemoModel, type DemoOptions, type DemoTrainingSettings } from './demo.js';
import { lineChart } from './svg-chart.js';

/** Everything that shapes the trained MoE; a change gives a new cache entry. */
export interface MoeDemoModelProfile extends DemoTrainingSettings {
  hiddenSize: number;
  /** Each routed expert's width (moe_intermediate_size). */
  expertSize: number;
  experts: number;
  topK: number;
  layers: number;
  heads: number;
  kvHeads: number;
  /** The load-balancing loss's coefficient (router_aux_loss_coef). */
  routerAuxLossCoef: number;
}

/** One line of the chart: an expert-pruning method with a ranking. */
export interface MoeDemoRun {
  label: string;
  method: string;
  ranking: ExpertRanking;
}

export interface MoeDemoProfile {
  model: MoeDemoModelProfile;
  runs: MoeDemoRun[];
  /** Fractions of the routed-expert parameters removed. */
  sparsities: number[];
  calibrationWindows: number;
  evalMaxTokens: number;
}

const RUNS: MoeDemoRun[] = [
  { label: 'heapr (global)', method: 'heapr', ranking: 'global' },
  { label: 'heapr (per-layer)', method: 'heapr', ranking: 'per-layer' },
  { label: 'activation-atoms', method: 'activation-atoms', ranking: 'per-layer' },
  { label: 'expert-drop', method: 'expert-drop', ranking: 'per-layer' },
];

export const MOE_DEMO_PROFILES: Record<'default' | 'quick', MoeDemoProfile> = {
  default: {
    model: { vocabSize: 1024, hiddenSize: 128, expertSize: 128, experts: 8, topK: 2, layers: 4, heads: 4, kvHeads: 2, seqLen: 128, batch: 8, steps: 400, lr: 3e-3, weightDecay: 0.1, routerAuxLossCoef: 0.01, seed: 1 },
    runs: RUNS,
    // The issue's fractions, then two past them: on this small model every atom method is lossless up to 50%.
    sparsities: [0.1, 0.2, 0.25, 0.4, 0.5, 0.7, 0.9],
    calibrationWindows: 64,
    evalMaxTokens: 8192,
  },
  // A seconds-long run of the same pipeline, for tests and a first look.
  quick: {
    model: { vocabSize: 320, hiddenSize: 64, expertSize: 64, experts: 8, topK: 2, layers: 2, heads: 4, kvHeads: 2, seqLen: 64, batch: 8, steps: 40, lr: 1e-2, weightDecay: 0, routerAuxLossCoef: 0.01, seed: 1 },
    runs: RUNS,
    sparsities: [0.25, 0.5],
    calibrationWindows: 8,
    evalMaxTokens: 2048,
  },
};

export interface MoeDemoResult {
  /** The run's label ('dense' for the unpruned model). */
  method: string;
  ranking: ExpertRanking | null;
  /** Requested and achieved fraction of routed-expert parameters removed. */
  sparsity: number;
  achieved: number;
  perplexity: number;
  /** Routed-expert FLOPs per token after / before (each expert at its kept width). */
  flopsRatio: number;
  seconds: number;
}

export interface MoeDemoReport {
  sparqVersion: string;
  dataset: string;
  model: { dir: string; cached: boolean; trainSeconds: number | null; finalLoss: number; parameters: number; routedParameters: number; profile: MoeDemoModelProfile };
  tokenizer: { vocabSize: number; calibrationTokens: number; evalTokens: number };
  eval: { seqLen: number; tokens: number };
  /** Seconds of the statistics pass (forward + backward over the calibration windows). */
  statisticsSeconds: number;
  results: MoeDemoResult[];
  seconds: number;
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

/** The trained model's config.json: Qwen3-MoE with every layer MoE and untied embeddings. */
export function moeDemoConfig(m: MoeDemoModelProfile): Record<string, unknown> {
  return {
    architectures: ['Qwen3MoeForCausalLM'],
    model_type: 'qwen3_moe',
    hidden_size: m.hiddenSize,
    intermediate_size: m.expertSize * m.topK,
    moe_intermediate_size: m.expertSize,
    num_experts: m.experts,
    num_experts_per_tok: m.topK,
    norm_topk_prob: true,
    decoder_sparse_step: 1,
    mlp_only_layers: [],
    output_router_logits: true,
    router_aux_loss_coef: m.routerAuxLossCoef,
    num_hidden_layers: m.layers,
    num_attention_heads: m.heads,
    num_key_value_heads: m.kvHeads,
    head_dim: m.hiddenSize / m.heads,
    vocab_size: m.vocabSize,
    max_position_embeddings: m.seqLen,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: false,
    attention_bias: false,
    hidden_act: 'silu',
    initializer_range: 0.02,
    torch_dtype: 'float32',
  };
}

/** Trains (or finds cached) the demo's MoE; returns its folder. */
async function trainedMoe(profile: MoeDemoProfile, options: DemoOptions, text: ReturnType<typeof loadSotuText>) {
  const m = profile.model;
  const log = options.log ?? (() => undefined);
  const progress = options.onProgress ?? (() => undefined);
  const key = createHash('sha256').update(JSON.stringify({ source: text.source, profile: m, version: sparqVersion() })).digest('hex').slice(0, 16);
  const modelDir = join(options.cacheDir ?? defaultCacheDir(), 'demo', `sotu-qwen3-moe-${key}`);
  const cached = !options.retrain && (await exists(join(modelDir, 'training.json')));
  if (cached) {
    log(`model: cached at ${modelDir}`);
    return { modelDir, cached, trainSeconds: null };
  }
  const trainSeconds = await trainDemoModel({
    text,
    modelDir,
    init: moeDemoConfig(m),
    settings: m,
    what: `${m.layers}-layer Qwen3-MoE (hidden ${m.hiddenSize}, ${m.experts} experts of ${m.expertSize}, top-${m.topK}, load-balancing loss × ${m.routerAuxLossCoef})`,
    routerAuxLossCoef: m.routerAuxLossCoef,
    log,
    progress,
    signal: options.signal,
  });
  return { modelDir, cached, trainSeconds };
}

export async function runMoeDemo(options: DemoOptions & { moeProfile?: MoeDemoProfile }): Promise<MoeDemoReport> {
  const started = performance.now();
  const profile = options.moeProfile ?? MOE_DEMO_PROFILES.default;
  const log = options.log ?? (() => undefined);
  const progress = options.onProgress ?? (() => undefined);
  const m = profile.model;
  const text = loadSotuText();
  log(`text: ${text.source}: ${(text.train.length / 1e6).toFixed(2)} MB to train on, ${(text.eval.length / 1e6).toFixed(2)} MB to evaluate on`);
  const { modelDir, cached, trainSeconds } = await trainedMoe(profile, options, text);
  const training = JSON.parse(await readFile(join(modelDir, 'training.json'), 'utf8')) as { losses: number[] };

  const tokenizer = await loadTokenizer(modelDir);
  const calibrationTokens = tokenizer.encode(lastBytes(text.train, 400_000));
  const evalTokens = tokenizer.encode(text.eval);
  const perplexityOf = async (dir: string): Promise<number> => {
    const model = await DecoderModel.open(dir);
    try {
      return (await evaluatePerplexity(model, evalTokens, { seqLen: m.seqLen, maxTokens: profile.evalMaxTokens, signal: options.signal })).perplexity;
    } finally {
      await model.close();
    }
  };

  const results: MoeDemoResult[] = [];
  let t = performance.now();
  const dense = await perplexityOf(modelDir);
  results.push({ method: 'dense', ranking: null, sparsity: 0, achieved: 0, perplexity: dense, flopsRatio: 1, seconds: (performance.now() - t) / 1000 });
  log(`dense perplexity ${dense.toFixed(2)} on ${Math.min(evalTokens.length, profile.evalMaxTokens).toLocaleString('en-US')} eval tokens`);

  // One statistics pass (with gradients, which also holds what the forward-only methods use).
  t = performance.now();
  const windows = sampleWindows(calibrationTokens, { nsamples: profile.calibrationWindows, seqLen: m.seqLen, seed: 0 });
  const model = await DecoderModel.open(modelDir);
  let statistics: ExpertStatistics[];
  let routedParameters = 0;
  try {
    const layers = await moeLayers(model);
    statistics = await gatherExpertStatistics(model, layers, windows, { gradients: true, signal: options.signal, onProgress: (done, total) => progress(done, total, 'scoring: forward + backward') });
    routedParameters = layers.reduce((s, l) => s + l.widths.reduce((a, b) => a + b, 0), 0) * 3 * m.hiddenSize;
  } finally {
    await model.close();
  }
  const statisticsSeconds = (performance.now() - t) / 1000;
  log(`statistics: one forward + backward pass over ${windows.length} × ${m.seqLen} calibration tokens in ${statisticsSeconds.toFixed(1)} s`);

  const runs = profile.runs.length * profile.sparsities.length;
  const scratch = await mkdtemp(join(tmpdir(), 'sparq-moe-demo-prune-'));
  try {
    let done = 0;
    for (const run of profile.runs) {
      for (const sparsity of profile.sparsities) {
        progress(done, runs, `pruning: ${run.label} ${Math.round(sparsity * 100)}%`);
        t = performance.now();
        const out = join(scratch, `${run.method}-${run.ranking}-${sparsity}`);
        const report = await pruneExperts({ model: modelDir, out, method: run.method, sparsity, perLayer: run.ranking === 'per-layer', global: run.ranking === 'global', format: 'shrunk', statistics, signal: options.signal });
        const perplexity = await perplexityOf(out);
        await rm(out, { recursive: true, force: true });
        results.push({ method: run.label, ranking: run.ranking, sparsity, achieved: report.sparsity, perplexity, flopsRatio: report.flopsPerToken.run / report.flopsPerToken.before, seconds: (performance.now() - t) / 1000 });
        progress(++done, runs, `pruning: ${run.label} ${Math.round(sparsity * 100)}%`);
      }
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }

  const report: MoeDemoReport = {
    sparqVersion: sparqVersion(),
    dataset: text.source,
    model: { dir: modelDir, cached, trainSeconds, finalLoss: training.losses[training.losses.length - 1], parameters: (await inspectModel(modelDir)).parameters, routedParameters, profile: m },
    tokenizer: { vocabSize: m.vocabSize, calibrationTokens: calibrationTokens.length, evalTokens: evalTokens.length },
    eval: { seqLen: m.seqLen, tokens: Math.floor(Math.min(evalTokens.length, profile.evalMaxTokens) / m.seqLen) * m.seqLen },
    statisticsSeconds,
    results,
    seconds: (performance.now() - started) / 1000,
  };
  const staged = await StagingFolder.open({ target: options.out, inputs: [modelDir], overwrite: true, resumable: false });
  try {
    await staged.guard(staged.path, async () => {
      await writeFile(join(staged.path, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
      await writeFile(join(staged.path, 'perplexity.svg'), moePerplexityChart(report));
      await writeFile(join(staged.path, 'README.md'), formatMoeTable(report));
    });
    await staged.commit();
  } catch (error) {
    await staged.close();
    throw error;
  }
  return report;
}

/** Perplexity (log scale) against the fraction of routed-expert parameters removed, one line per run. */
export function moePerplexityChart(report: MoeDemoReport): string {
  const dense = report.results.find((r) => r.method === 'dense')!;
  const methods = [...new Set(report.results.filter((r) => r.method !== 'dense').map((r) => r.method))];
  const m = report.model.profile;
  return lineChart({
    title: `Perplexity after expert pruning — ${report.model.parameters.toLocaleString('en-US')}-parameter Qwen3-MoE (${m.experts} experts, top-${m.topK}) trained on State-of-the-Union text`,
    xLabel: 'fraction of routed-expert parameters removed',
    yLabel: 'perplexity (eval text, log scale)',
    logY: true,
    series: methods.map((method) => ({
      name: method,
      points: [[0, dense.perplexity] as [number, number], ...report.results.filter((r) => r.method === method).map((r) => [r.achieved, r.perplexity] as [number, number])],
    })),
  });
}

/** The results as a Markdown table: one row per run, one column per fraction removed. */
export function formatMoeTable(report: MoeDemoReport): string {
  const dense = report.results.find((r) => r.method === 'dense')!;
  const pruned = report.results.filter((r) => r.method !== 'dense');
  const sparsities = [...new Set(pruned.map((r) => r.sparsity))];
  const methods = [...new Set(pruned.map((r) => r.method))];
  const lines = [
    `Perplexity of the dense model: ${dense.perplexity.toFixed(2)} (routed experts: ${report.model.routedParameters.toLocaleString('en-US')} of ${report.model.parameters.toLocaleString('en-US')} parameters)`,
    '',
    `| method | ${sparsities.map((s) => `${Math.round(s * 100)}%`).join(' | ')} |`,
    `|---|${sparsities.map(() => '---:').join('|')}|`,
    ...methods.map((method) => `| ${method} | ${sparsities.map((s) => pruned.find((r) => r.method === method && r.sparsity === s)!.perplexity.toFixed(2)).join(' | ')} |`),
  ];
  return `${lines.join('\n')}\n`;
}

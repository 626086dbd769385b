// `sparq demo`: the whole product on a fresh machine with nothing but npm.
//   1. State-of-the-Union text from an npm dataset package (addresses up to 2000 train, 2001 on eval);
//   2. a byte-level BPE tokenizer trained on it, written as a standard tokenizer.json;
//   3. a small Llama trained from scratch by sparq's trainer — cached under the user's cache folder, keyed
//      by every setting that shapes it, so the next run starts at once;
//   4. pruned by each method at several sparsities (and 2:4), each result's perplexity measured on the
//      eval text; a table on stdout, report.json and an SVG chart of perplexity against sparsity;
//   5. quantized by each quantization method (RTN, GPTQ, GWQ, HWPQ …) at a few grids: a table and an SVG
//      chart of perplexity against bits per weight (scales, zero points and outliers counted).
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluatePerplexity } from '../eval/perplexity.js';
import { checkOutputLocation, StagingFolder } from '../export/staging.js';
import { DecoderModel } from '../models/decoder.js';
import { inspectModel } from '../models/inspect.js';
import { parseRecipe } from '../pipeline/recipe.js';
import { prune, quantize } from '../pipeline/prune.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { train } from '../train/trainer.js';
import { sparqVersion } from '../version.js';
import { byteLevelBpeTokenizerConfig, trainByteLevelBpe } from './bpe.js';
import { loadSotuText, type SotuText } from './dataset.js';
import { lineChart } from './svg-chart.js';

/** Everything that shapes the trained model; a change gives a new cache entry. */
export interface DemoModelProfile extends DemoTrainingSettings {
  hiddenSize: number;
  intermediateSize: number;
  layers: number;
  heads: number;
  kvHeads: number;
}

export interface DemoProfile {
  model: DemoModelProfile;
  methods: string[];
  sparsities: number[];
  /** Extra N:M patterns pruned by every method (shown in the table, not the chart). */
  patterns: string[];
  calibrationWindows: number;
  evalMaxTokens: number;
  /** The quantization table's rows: each a recipe quantizing the whole model, written dense (fake-quantized). */
  quantization: DemoQuantization[];
  /**
   * Elsa's row of the pruning table: a short training run on the training text (`steps` of 8 windows of
   * the model's sequence length) at each of `patterns`; the table gives its token budget next to the
   * one-shot methods' calibration windows.
   */
  elsa: { patterns: string[]; steps: number };
}

export interface DemoQuantization {
  /** The row's method name in the table and chart (one series each). */
  method: string;
  /** The column: 'W4 g32', 'FP8 per channel', … */
  scheme: string;
  recipe: Record<string, unknown>;
}

/**
 * RTN, GPTQ and GWQ (1% outliers by |∂L/∂W|, GPTQ base) at W4 and W3 in groups of 32, HWPQ's FP8, and (with
 * `gqsa`) GQSA: W4 in groups of 16 with half the groups pruned, both refinement stages 20 steps each.
 */
function quantizationRows(groupSize: number, bits: number[], gqsa = false): DemoQuantization[] {
  const rows: DemoQuantization[] = [];
  for (const b of bits) {
    const quantize = { bits: b, groupSize };
    const scheme = `W${b} g${groupSize}`;
    rows.push({ method: 'rtn', scheme, recipe: { method: 'rtn', quantize } });
    rows.push({ method: 'gptq', scheme, recipe: { method: 'gptq', quantize } });
    rows.push({ method: 'gwq', scheme, recipe: { method: 'gwq', quantize, options: { base: 'gptq' } } });
  }
  rows.push({ method: 'hwpq', scheme: 'FP8 per channel', recipe: { method: 'hwpq', quantize: { bits: 8, groupSize: 0 }, options: { format: 'fp8' } } });
  if (gqsa) {
    const recipe = { method: 'gqsa', sparsity: 0.5, quantize: { bits: 4, groupSize: 16 }, options: { blockSteps: 20, e2eSteps: 20 } };
    rows.push({ method: 'gqsa', scheme: 'W4 g16, 50% of groups', recipe });
  }
  return rows;
}

/** The default: trains in about 6 minutes on 2 cores of a current x86 server, then about 3 minutes of pruning (see README). */
export const DEMO_PROFILES: Record<'default' | 'quick', DemoProfile> = {
  default: {
    model: { vocabSize: 1024, hiddenSize: 256, intermediateSize: 768, layers: 4, heads: 8, kvHeads: 4, seqLen: 256, batch: 8, steps: 600, lr: 2e-3, weightDecay: 0.1, seed: 1 },
    methods: ['magnitude', 'wanda', 'sparsegpt', 'alps'],
    sparsities: [0.5, 0.6, 0.7, 0.8, 0.9],
    patterns: ['2:4'],
    calibrationWindows: 64,
    evalMaxTokens: 16384,
    quantization: quantizationRows(32, [4, 3], true),
    elsa: { patterns: ['0.8', '0.9'], steps: 200 },
  },
  // A seconds-long run of the same pipeline, for tests and a first look.
  quick: {
    model: { vocabSize: 320, hiddenSize: 64, intermediateSize: 160, layers: 2, heads: 4, kvHeads: 2, seqLen: 64, batch: 8, steps: 60, lr: 1e-2, weightDecay: 0, seed: 1 },
    methods: ['magnitude', 'wanda', 'sparsegpt', 'alps'],
    sparsities: [0.5, 0.7],
    patterns: ['2:4'],
    calibrationWindows: 8,
    evalMaxTokens: 4096,
    quantization: quantizationRows(32, [4]),
    elsa: { patterns: ['0.7'], steps: 16 },
  },
};

export interface DemoOptions {
  profile?: DemoProfile;
  /** Report folder (report.json, perplexity.svg); replaced if it exists. */
  out: string;
  /** Where trained models are cached (default: $SPARQ_CACHE_DIR, else the OS cache folder + /sparq). */
  cacheDir?: string;
  /** Train again even if a cached model exists. */
  retrain?: boolean;
  /** One line per stage, for the user. */
  log?: (line: string) => void;
  /** Progress within a stage. */
  onProgress?: (step: number, steps: number, stage: string) => void;
  signal?: AbortSignal;
}

export interface DemoResult {
  method: string;
  /** 'dense', a sparsity fraction as text ('0.5'), or an N:M pattern. */
  pattern: string;
  sparsity: number;
  perplexity: number;
  seconds: number;
  /** Tokens the method trained on (Elsa); the one-shot methods see the calibration windows only. */
  trainingTokens?: number;
}

export interface DemoQuantizationResult {
  method: string;
  scheme: string;
  /** Average over the linears, as stored: codes, scales, zero points, outliers' values and indices. */
  bitsPerWeight: number;
  perplexity: number;
  seconds: number;
}

export interface DemoReport {
  sparqVersion: string;
  dataset: string;
  model: { dir: string; cached: boolean; trainSeconds: number | null; finalLoss: number; parameters: number; profile: DemoModelProfile };
  tokenizer: { vocabSize: number; calibrationTokens: number; evalTokens: number };
  /** The one-shot methods' calibration: windows of seqLen tokens from the end of the training text. */
  calibration: { windows: number; seqLen: number };
  eval: { seqLen: number; tokens: number };
  results: DemoResult[];
  quantization: DemoQuantizationResult[];
  seconds: number;
}

/** The per-user cache folder: $SPARQ_CACHE_DIR, else XDG_CACHE_HOME, ~/Library/Caches or %LOCALAPPDATA%, + sparq. */
export function defaultCacheDir(): string {
  if (process.env.SPARQ_CACHE_DIR) return process.env.SPARQ_CACHE_DIR;
  const base =
    process.env.XDG_CACHE_HOME ??
    (process.platform === 'darwin' ? join(homedir(), 'Library', 'Caches') : process.platform === 'win32' ? (process.env.LOCALAPPDATA ?? join(homedir(), 'AppData', 'Local')) : join(homedir(), '.cache'));
  return join(base, 'sparq');
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  const started = performance.now();
  const profile = options.profile ?? DEMO_PROFILES.default;
  const log = options.log ?? (() => undefined);
  const progress = options.onProgress ?? (() => undefined);
  const m = profile.model;
  // A bad --out is refused now, not after minutes of training.
  await checkOutputLocation(options.out, []);

  const text = loadSotuText();
  log(`text: ${text.source}: ${(text.train.length / 1e6).toFixed(2)} MB to train on, ${(text.eval.length / 1e6).toFixed(2)} MB to evaluate on`);

  // The cache key covers the data, the model/training settings and sparq's version.
  const key = createHash('sha256').update(JSON.stringify({ source: text.source, profile: m, version: sparqVersion() })).digest('hex').slice(0, 16);
  const modelDir = join(options.cacheDir ?? defaultCacheDir(), 'demo', `sotu-llama-${key}`);
  const cached = !options.retrain && (await exists(join(modelDir, 'training.json')));
  let trainSeconds: number | null = null;
  if (cached) {
    log(`model: cached at ${modelDir}`);
  } else {
    trainSeconds = await trainDemoModel({ text, modelDir, init: demoConfig(m), settings: m, what: `${m.layers}-layer Llama (hidden ${m.hiddenSize})`, log, progress, signal: options.signal });
  }
  const training = JSON.parse(await readFile(join(modelDir, 'training.json'), 'utf8')) as { losses: number[] };

  const tokenizer = await loadTokenizer(modelDir);
  // Calibration windows come from the end of the training text; the eval text is 2001 on.
  const calibrationTokens = tokenizer.encode(lastBytes(text.train, 400_000));
  const evalTokens = tokenizer.encode(text.eval);
  const evalSettings = { seqLen: m.seqLen, maxTokens: profile.evalMaxTokens, signal: options.signal };
  const perplexityOf = async (dir: string): Promise<number> => {
    const model = await DecoderModel.open(dir);
    try {
      return (await evaluatePerplexity(model, evalTokens, evalSettings)).perplexity;
    } finally {
      await model.close();
    }
  };

  const results: DemoResult[] = [];
  let t = performance.now();
  const dense = await perplexityOf(modelDir);
  results.push({ method: 'dense', pattern: 'dense', sparsity: 0, perplexity: dense, seconds: (performance.now() - t) / 1000 });
  log(`dense perplexity ${dense.toFixed(2)} on ${Math.min(evalTokens.length, profile.evalMaxTokens).toLocaleString('en-US')} eval tokens`);

  const patterns = [...profile.sparsities.map(String), ...profile.patterns];
  const runs = profile.methods.length * patterns.length + profile.elsa.patterns.length;
  const scratch = await mkdtemp(join(tmpdir(), 'sparq-demo-prune-'));
  // One run of the tables: compress the cached model with a recipe on the shared calibration windows into
  // the scratch folder (dense output), measure its perplexity, delete it.
  const compressAndMeasure = async (compress: typeof prune | typeof quantize, recipe: Record<string, unknown>, name: string, tokens = calibrationTokens) => {
    const started = performance.now();
    const out = join(scratch, name);
    const report = await compress({
      model: modelDir,
      out,
      format: 'dense',
      recipe: parseRecipe(recipe, 'demo'),
      calibrationTokens: tokens,
      nsamples: profile.calibrationWindows,
      seqLen: m.seqLen,
      seed: 0,
      measureError: false,
      signal: options.signal,
    });
    const perplexity = await perplexityOf(out);
    await rm(out, { recursive: true, force: true });
    return { report, perplexity, seconds: (performance.now() - started) / 1000 };
  };
  let quantizationResults: DemoQuantizationResult[] = [];
  try {
    let done = 0;
    for (const method of profile.methods) {
      for (const pattern of patterns) {
        progress(done, runs, `pruning: ${method} ${pattern}`);
        const { report, perplexity, seconds } = await compressAndMeasure(prune, { method, sparsity: pattern }, `${method}-${pattern.replace(':', 'of')}`);
        results.push({ method, pattern, sparsity: report.totals.sparsity, perplexity, seconds });
        progress(++done, runs, `pruning: ${method} ${pattern}`);
      }
    }
    // Elsa is a short training run: it draws its windows from the end of the training text, about 16 bytes
    // (4 tokens) of text per token it sees, so it rarely sees a token twice — on the calibration tail alone
    // it would learn that text by heart instead of the language (see README, Elsa results).
    const elsaBytes = 16 * profile.elsa.steps * 8 * m.seqLen;
    let elsaTokens: Int32Array | undefined; // encoded at the first Elsa row (seconds for megabytes of text)
    for (const pattern of profile.elsa.patterns) {
      progress(done, runs, `pruning: elsa ${pattern} (${profile.elsa.steps} training steps)`);
      const recipe = { method: 'elsa', sparsity: pattern, options: { steps: profile.elsa.steps } };
      elsaTokens ??= tokenizer.encode(lastBytes(text.train, elsaBytes));
      const { report, perplexity, seconds } = await compressAndMeasure(prune, recipe, `elsa-${pattern.replace(':', 'of')}`, elsaTokens);
      results.push({ method: 'elsa', pattern, sparsity: report.totals.sparsity, perplexity, seconds, trainingTokens: Number(report.training?.tokensSeen) });
      progress(++done, runs, `pruning: elsa ${pattern}`);
    }
    const quantization: DemoQuantizationResult[] = [];
    for (const [i, row] of profile.quantization.entries()) {
      progress(i, profile.quantization.length, `quantizing: ${row.method} ${row.scheme}`);
      const { report, perplexity, seconds } = await compressAndMeasure(quantize, row.recipe, `quantized-${i}`);
      quantization.push({ method: row.method, scheme: row.scheme, bitsPerWeight: report.totals.bitsPerWeight ?? 32, perplexity, seconds });
      progress(i + 1, profile.quantization.length, `quantizing: ${row.method} ${row.scheme}`);
    }
    quantizationResults = quantization;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }

  const report: DemoReport = {
    sparqVersion: sparqVersion(),
    dataset: text.source,
    model: {
      dir: modelDir,
      cached,
      trainSeconds,
      finalLoss: training.losses[training.losses.length - 1],
      parameters: (await inspectModel(modelDir)).parameters,
      profile: m,
    },
    tokenizer: { vocabSize: m.vocabSize, calibrationTokens: calibrationTokens.length, evalTokens: evalTokens.length },
    calibration: { windows: profile.calibrationWindows, seqLen: m.seqLen },
    eval: { seqLen: m.seqLen, tokens: Math.floor(Math.min(evalTokens.length, profile.evalMaxTokens) / m.seqLen) * m.seqLen },
    results,
    quantization: quantizationResults,
    seconds: (performance.now() - started) / 1000,
  };
  const staged = await StagingFolder.open({ target: options.out, inputs: [modelDir], overwrite: true, resumable: false });
  try {
    await staged.guard(staged.path, async () => {
      await writeFile(join(staged.path, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
      await writeFile(join(staged.path, 'perplexity.svg'), perplexityChart(report));
      if (report.quantization.length > 0) await writeFile(join(staged.path, 'quantization.svg'), quantizationChart(report));
      await writeFile(join(staged.path, 'README.md'), `${formatTable(report)}\n${formatQuantizationTable(report)}`);
    });
    await staged.commit();
  } catch (error) {
    await staged.close();
    throw error;
  }
  return report;
}

/** About the last `bytes` characters of `text`, starting at a paragraph. */
export function lastBytes(text: string, bytes: number): string {
  if (text.length <= bytes) return text;
  const start = text.indexOf('\n\n', text.length - bytes);
  return start < 0 ? text.slice(text.length - bytes) : text.slice(start + 2);
}

/** The trained model's config.json: a Llama with untied embeddings. */
export function demoConfig(m: DemoModelProfile): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: m.hiddenSize,
    intermediate_size: m.intermediateSize,
    num_hidden_layers: m.layers,
    num_attention_heads: m.heads,
    num_key_value_heads: m.kvHeads,
    vocab_size: m.vocabSize,
    max_position_embeddings: m.seqLen,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    hidden_act: 'silu',
    initializer_range: 0.02,
    torch_dtype: 'float32',
  };
}

/** Perplexity (log scale) against sparsity, one line per method, starting from the dense model. */
export function perplexityChart(report: DemoReport): string {
  const dense = report.results.find((r) => r.method === 'dense')!;
  const methods = [...new Set(report.results.filter((r) => r.method !== 'dense').map((r) => r.method))];
  return lineChart({
    title: `Perplexity after one-shot pruning — ${report.model.parameters.toLocaleString('en-US')}-parameter Llama trained on State-of-the-Union text`,
    xLabel: 'sparsity (fraction of weights in linear layers set to zero)',
    yLabel: 'perplexity (eval text, log scale)',
    logY: true,
    series: methods.map((method) => ({
      name: method,
      points: [
        [0, dense.perplexity] as [number, number],
        ...report.results.filter((r) => r.method === method && !r.pattern.includes(':')).map((r) => [r.sparsity, r.perplexity] as [number, number]),
      ],
    })),
  });
}

/** The results as a Markdown table: one row per method, one column per pattern. */
export function formatTable(report: DemoReport): string {
  const dense = report.results.find((r) => r.method === 'dense')!;
  const pruned = report.results.filter((r) => r.method !== 'dense');
  const patterns = [...new Set(pruned.map((r) => r.pattern))];
  const methods = [...new Set(pruned.map((r) => r.method))];
  const label = (p: string) => (p.includes(':') ? p : `${Math.round(Number(p) * 100)}%`);
  const lines = [
    `Perplexity of the dense model: ${dense.perplexity.toFixed(2)}`,
    '',
    `| method | ${patterns.map(label).join(' | ')} |`,
    `|---|${patterns.map(() => '---:').join('|')}|`,
    ...methods.map((method) => `| ${method} | ${patterns.map((p) => pruned.find((r) => r.method === method && r.pattern === p)?.perplexity.toFixed(2) ?? '—').join(' | ')} |`),
  ];
  // Methods that train (Elsa) saw far more text than the one-shot methods' calibration windows: say both.
  const trained = pruned.find((r) => r.trainingTokens !== undefined);
  if (trained) {
    const { windows, seqLen } = report.calibration;
    lines.push('', `Budgets: the one-shot methods calibrate on ${windows} windows of ${seqLen} tokens (${(windows * seqLen).toLocaleString('en-US')}); ${trained.method} trains on ${trained.trainingTokens!.toLocaleString('en-US')} tokens per sparsity (a short sparse training run).`);
  }
  return `${lines.join('\n')}\n`;
}

/** Perplexity (log scale) against bits per weight, one line per quantization method (the dense model's in the title). */
export function quantizationChart(report: DemoReport): string {
  const dense = report.results.find((r) => r.method === 'dense')!;
  const methods = [...new Set(report.quantization.map((r) => r.method))];
  return lineChart({
    title: `Perplexity after one-shot quantization — ${report.model.parameters.toLocaleString('en-US')}-parameter Llama (dense f32: ${dense.perplexity.toFixed(2)})`,
    xLabel: 'bits per weight (codes + scales + zero points + outliers, linear layers)',
    yLabel: 'perplexity (eval text, log scale)',
    logY: true,
    series: methods.map((method) => ({
      name: method,
      points: report.quantization
        .filter((r) => r.method === method)
        .map((r) => [r.bitsPerWeight, r.perplexity] as [number, number])
        .sort((a, b) => a[0] - b[0]),
    })),
  });
}

/** The quantization results as a Markdown table: one row per method and grid, bits per weight and perplexity. */
export function formatQuantizationTable(report: DemoReport): string {
  if (report.quantization.length === 0) return '';
  const lines = [
    '| method | grid | bits/weight | perplexity | seconds |',
    '|---|---|---:|---:|---:|',
    ...report.quantization.map((r) => `| ${r.method} | ${r.scheme} | ${r.bitsPerWeight.toFixed(2)} | ${r.perplexity.toFixed(2)} | ${r.seconds.toFixed(1)} |`),
  ];
  return `${lines.join('\n')}\n`;
}

/** What a cached demo model is trained with (both demo profiles' model settings have these). */
export interface DemoTrainingSettings {
  vocabSize: number;
  seqLen: number;
  batch: number;
  steps: number;
  lr: number;
  weightDecay: number;
  seed: number;
}

/**
 * Trains a demo model into `modelDir` (the cache): a byte-level BPE tokenizer on the training text, then
 * `init` trained from scratch by sparq's trainer with AdamW on the most recent text. Returns the seconds.
 */
export async function trainDemoModel(args: {
  text: SotuText;
  modelDir: string;
  init: Record<string, unknown>;
  settings: DemoTrainingSettings;
  /** The model, for the log line ("4-layer Llama (hidden 256)"). */
  what: string;
  routerAuxLossCoef?: number;
  log: (line: string) => void;
  progress: (step: number, steps: number, stage: string) => void;
  signal?: AbortSignal;
}): Promise<number> {
  const { text, modelDir, settings: m, log, progress } = args;
  log(`tokenizer: byte-level BPE with ${m.vocabSize} tokens`);
  const scratch = await mkdtemp(join(tmpdir(), 'sparq-demo-'));
  try {
    await writeFile(join(scratch, 'tokenizer.json'), JSON.stringify(trainByteLevelBpe(text.train, m.vocabSize, { onProgress: (done, total) => progress(done, total, 'tokenizer: merges') })));
    await writeFile(join(scratch, 'tokenizer_config.json'), JSON.stringify(byteLevelBpeTokenizerConfig()));
    const tokenizer = await loadTokenizer(scratch);
    // The run sees steps × batch windows; encode about that much of the most recent text (BPE on this
    // text averages about 3 bytes a token) rather than all of it.
    const tokens = tokenizer.encode(lastBytes(text.train, m.steps * m.batch * m.seqLen * 3.5));
    log(`model: training a ${args.what} for ${m.steps} steps of ${m.batch} × ${m.seqLen} tokens on ${tokens.length.toLocaleString('en-US')} tokens`);
    await mkdir(join(modelDir, '..'), { recursive: true });
    const report = await train({
      init: args.init,
      initSeed: m.seed,
      tokenizer: scratch,
      tokens,
      seqLen: m.seqLen,
      batch: m.batch,
      steps: m.steps,
      optimizer: 'adamw',
      lr: m.lr,
      weightDecay: m.weightDecay,
      gradClip: 1,
      ...(args.routerAuxLossCoef !== undefined ? { routerAuxLossCoef: args.routerAuxLossCoef } : {}),
      shuffle: true,
      seed: m.seed,
      out: modelDir,
      overwrite: true,
      onProgress: ({ step, steps, loss, tokensPerSecond }) => progress(step, steps, `training: loss ${loss.toFixed(3)}, ${tokensPerSecond.toFixed(0)} tokens/s`),
      signal: args.signal,
    });
    log(`model: loss ${report.losses[0].toFixed(3)} → ${report.losses[report.losses.length - 1].toFixed(3)} in ${report.seconds.toFixed(0)} s (${report.tokensPerSecond.toFixed(0)} tokens/s); cached at ${modelDir}`);
    return report.seconds;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

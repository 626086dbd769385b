// Trains a (small) decoder model in memory and writes it as a Hugging Face folder.
//
// Data: the token stream is cut into non-overlapping windows of `seqLen` tokens, as the eval protocol
// does (each window gives seqLen − 1 next-token predictions); the windows are taken in order, or in a
// seeded random order per pass over the data with `shuffle`. The loss of a step is the mean over the
// batch's windows of each window's mean next-token NLL.
//
// Each step: forward + backward over one tape (lib/autograd), optional global-norm clipping, one
// optimizer update. Mixture-of-experts models can add the router load-balancing loss to the objective
// (lib/autograd/router-balance.ts), as Hugging Face does with output_router_logits: its coefficient is
// routerAuxLossCoef, by default the config's router_aux_loss_coef (DeepSeek: aux_loss_alpha) when the
// config sets output_router_logits, else 0. `losses` stay the language-model loss alone. The output folder is staged beside `out` and renamed into place at the end, so an
// interrupted run leaves nothing half-written there.
import { copyFile, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { checkWindowFits, lossAndGradients, makeBatch } from '../autograd/decoder.js';
import { AbortError, InvalidArgumentError } from '../errors.js';
import { readJsonObject } from '../io/text.js';
import { StagingFolder } from '../export/staging.js';
import { CheckpointWriter } from '../io/checkpoint.js';
import { DecoderModel } from '../models/decoder.js';
import { parseConfig } from '../models/config.js';
import { seededRandom } from '../pipeline/calibration.js';
import { TensorArena, type Tensor } from '../tensor/tensor.js';
import { checkInteger, checkNumber, checkOneOf } from '../validate.js';
import { sparqVersion } from '../version.js';
import { initialParameters } from './init.js';
import { clipGradients, Optimizer, type OptimizerKind } from './optimizer.js';

export const SAVE_DTYPES = { float32: 'f32', bfloat16: 'bf16', float16: 'f16' } as const;
export type SaveDtype = keyof typeof SAVE_DTYPES;

/** Files copied along from the starting folder so the result stays a usable model folder. */
const COMPANION_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json', 'tokenizer.model', 'vocab.json', 'merges.txt'];

export interface TrainOptions {
  /** Start from this model folder… */
  model?: string;
  /** …or from a new model with this config.json (a path or the parsed object), initialised from `initSeed`. */
  init?: string | Record<string, unknown>;
  initSeed?: number;
  /** A tokenizer for the output folder (e.g. for a model started with `init`): a tokenizer.json, or a
   * folder whose tokenizer files are copied. */
  tokenizer?: string;
  tokens: Int32Array;
  seqLen: number;
  batch: number;
  steps: number;
  optimizer: OptimizerKind;
  lr: number;
  weightDecay?: number;
  /** Clip the global gradient norm to this value (0 or absent: no clipping). */
  gradClip?: number;
  saveDtype?: SaveDtype;
  /** MoE models: weight of the router load-balancing loss (see the file comment for the default; 0: off). */
  routerAuxLossCoef?: number;
  out: string;
  overwrite?: boolean;
  shuffle?: boolean;
  seed?: number;
  onProgress?: (progress: { step: number; steps: number; loss: number; tokensPerSecond: number }) => void;
  signal?: AbortSignal;
}

export interface TrainReport {
  out: string;
  steps: number;
  batch: number;
  seqLen: number;
  /** Next-token predictions per step: batch · (seqLen − 1). */
  tokensPerStep: number;
  /** Windows available in the token stream, and how many passes over them the run made. */
  windows: number;
  epochs: number;
  losses: number[];
  /** MoE models: the router load-balancing loss (unscaled) of each step, and its coefficient. */
  routerAuxLosses?: number[];
  routerAuxLossCoef?: number;
  seconds: number;
  /** Predicted tokens per second over the optimisation steps (excluding loading and saving). */
  tokensPerSecond: number;
  peakRssBytes: number;
}

const breathe = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Window order: each pass over the data in order, or shuffled per pass from `seed`. */
function windowOrder(windows: number, shuffle: boolean, seed: number): () => number {
  const random = seededRandom(seed);
  let order: number[] = [];
  let next = 0;
  return () => {
    if (next === order.length) {
      order = Array.from({ length: windows }, (_, i) => i);
      if (shuffle) {
        for (let i = windows - 1; i > 0; --i) {
          const j = random(i + 1);
          [order[i], order[j]] = [order[j], order[i]];
        }
      }
      next = 0;
    }
    return order[next++];
  };
}

export async function train(options: TrainOptions): Promise<TrainReport> {
  if ((options.model === undefined) === (options.init === undefined)) throw new InvalidArgumentError('train: give exactly one of model (a folder) or init (a config)');
  const seqLen = checkInteger('seqLen', options.seqLen, 2);
  const batchSize = checkInteger('batch', options.batch, 1);
  const steps = checkInteger('steps', options.steps, 1);
  const saveDtype = checkOneOf('saveDtype', options.saveDtype ?? 'float32', Object.keys(SAVE_DTYPES) as SaveDtype[]);
  // 0 means no clipping, as in PyTorch trainers' max_grad_norm = 0 (clipping to norm 0 would train nothing).
  const gradClip = options.gradClip === undefined || options.gradClip === 0 ? undefined : checkNumber('gradClip', options.gradClip, { min: 0 });
  const optimizer = new Optimizer({ kind: options.optimizer, lr: options.lr, weightDecay: options.weightDecay });
  const windows = Math.floor(options.tokens.length / seqLen);
  if (windows < batchSize) {
    throw new InvalidArgumentError(`train: ${options.tokens.length} tokens make ${windows} windows of ${seqLen}; a batch needs ${batchSize} (give more text or lower --batch/--seq-len)`);
  }

  const inputs = [options.model, typeof options.init === 'string' ? options.init : undefined, options.tokenizer].filter((p): p is string => p !== undefined);
  const staged = await StagingFolder.open({ target: options.out, inputs, overwrite: options.overwrite, resumable: false });
  let model: DecoderModel | undefined;
  try {
    // The starting point: an existing folder, or a new model written into the staging folder first so
    // both paths open the same way.
    let configJson: Record<string, unknown>;
    let parameters: Map<string, Tensor>;
    if (options.model !== undefined) {
      model = await DecoderModel.open(options.model);
      configJson = await readJsonObject(join(options.model, 'config.json'));
      parameters = new Map();
      for (const name of model.checkpoint.names()) parameters.set(name, await model.checkpoint.read(name, { dtype: 'f32' }));
    } else {
      const source = typeof options.init === 'string' ? options.init : 'init config';
      configJson = typeof options.init === 'string' ? await readJsonObject(options.init) : { ...options.init! };
      parameters = initialParameters(parseConfig(configJson, source), {
        seed: options.initSeed,
        std: typeof configJson.initializer_range === 'number' ? configJson.initializer_range : undefined,
      });
      await writeFile(join(staged.path, 'config.json'), `${JSON.stringify(configJson, null, 2)}\n`);
      await writeCheckpoint(staged.path, parameters, 'float32');
      model = await DecoderModel.open(staged.path);
    }
    const { config } = model;
    if (options.routerAuxLossCoef !== undefined && !config.moe) {
      throw new InvalidArgumentError(`train: routerAuxLossCoef applies to mixture-of-experts models; ${config.architecture} has no router`);
    }
    const auxCoefficient = config.moe
      ? checkNumber('routerAuxLossCoef', options.routerAuxLossCoef ?? (configJson.output_router_logits === true ? config.moe.routerAuxLossCoef : 0), { min: 0 })
      : undefined;
    const auxLosses: number[] = [];
    // A window of seqLen tokens feeds seqLen − 1 positions.
    checkWindowFits(model, seqLen - 1);
    for (let i = 0; i < windows * seqLen; ++i) {
      const t = options.tokens[i];
      if (t < 0 || t >= config.vocabSize) throw new InvalidArgumentError(`train: token ${t} at position ${i} is outside the model's vocabulary of ${config.vocabSize}`);
    }

    const nextWindow = windowOrder(windows, options.shuffle ?? false, options.seed ?? 0);
    const losses: number[] = [];
    const tokensPerStep = batchSize * (seqLen - 1);
    const arena = new TensorArena();
    const started = performance.now();
    for (let step = 1; step <= steps; ++step) {
      if (options.signal?.aborted) throw new AbortError(`train: interrupted at step ${step} of ${steps}; nothing was written to ${options.out}`);
      const batch = makeBatch(
        Array.from({ length: batchSize }, () => {
          const w = nextWindow();
          return options.tokens.subarray(w * seqLen, (w + 1) * seqLen);
        }),
      );
      // The step's activations and gradients come from the arena and go back to it once applied.
      const { loss, gradients, routerAuxLoss } = await arena.run(() => lossAndGradients(model!, parameters, batch, { routerAuxLossCoef: auxCoefficient }));
      if (routerAuxLoss !== undefined) auxLosses.push(routerAuxLoss);
      if (!Number.isFinite(loss)) throw new InvalidArgumentError(`train: the loss became ${loss} at step ${step}; lower --lr or set --grad-clip`);
      if (gradClip !== undefined) clipGradients(gradients, gradClip);
      optimizer.step(parameters, gradients);
      arena.recycle();
      losses.push(loss);
      const seconds = (performance.now() - started) / 1000;
      options.onProgress?.({ step, steps, loss, tokensPerSecond: (step * tokensPerStep) / seconds });
      await breathe();
    }
    const seconds = (performance.now() - started) / 1000;
    await model.close();
    model = undefined;

    const report: TrainReport = {
      out: options.out,
      steps,
      batch: batchSize,
      seqLen,
      tokensPerStep,
      windows,
      epochs: (steps * batchSize) / windows,
      losses,
      ...(auxCoefficient !== undefined ? { routerAuxLosses: auxLosses, routerAuxLossCoef: auxCoefficient } : {}),
      seconds,
      tokensPerSecond: (steps * tokensPerStep) / seconds,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
    };
    await staged.guard(staged.path, () => writeCheckpoint(staged.path, parameters, saveDtype));
    configJson.torch_dtype = saveDtype;
    configJson.sparq = {
      version: sparqVersion(),
      training: {
        from: options.model !== undefined ? basename(options.model) : 'init',
        optimizer: optimizer.kind,
        lr: optimizer.lr,
        weight_decay: optimizer.weightDecay,
        grad_clip: gradClip ?? null,
        ...(auxCoefficient !== undefined ? { router_aux_loss_coef: auxCoefficient } : {}),
        steps,
        batch: batchSize,
        seq_len: seqLen,
        final_loss: losses[losses.length - 1],
      },
    };
    await staged.guard(staged.path, async () => {
      await writeFile(join(staged.path, 'config.json'), `${JSON.stringify(configJson, null, 2)}\n`);
      await writeFile(join(staged.path, 'training.json'), `${JSON.stringify(report, null, 2)}\n`);
      if (options.model !== undefined) await copyCompanions(options.model, staged.path);
      if (options.tokenizer !== undefined) {
        if ((await stat(options.tokenizer)).isDirectory()) await copyCompanions(options.tokenizer, staged.path);
        else await copyFile(options.tokenizer, join(staged.path, 'tokenizer.json'));
      }
    });
    await staged.commit();
    return report;
  } catch (error) {
    await model?.close();
    await staged.close();
    throw error;
  }
}

/** Copies the companion files that exist in `from`. */
async function copyCompanions(from: string, to: string): Promise<void> {
  for (const file of COMPANION_FILES) {
    await copyFile(join(from, file), join(to, file)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }
}

/** Writes every parameter, in map order, as one model.safetensors (or shards past 4 GiB). */
async function writeCheckpoint(dir: string, parameters: ReadonlyMap<string, Tensor>, dtype: SaveDtype): Promise<void> {
  const stored = SAVE_DTYPES[dtype];
  const plan = [...parameters].map(([name, t]) => ({ name, dtype: stored, shape: [...t.shape] }));
  const writer = await CheckpointWriter.create(dir, plan, { maxShardBytes: 4 * 2 ** 30, metadata: { format: 'pt' } });
  try {
    for (const [name, t] of parameters) await writer.write(name, stored === 'f32' ? t : t.to(stored));
    await writer.close();
  } catch (error) {
    await writer.abort();
    throw error;
  }
}

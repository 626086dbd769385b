// Routed experts of different widths: the record an expert-pruned model folder carries in config.json
// (`sparq_experts`), and the checkpoint view that runs each expert at its kept width.
//
//   "sparq_experts": { "format": "padded" | "shrunk",
//                      "layers": { "<layer>": { "stored": W, "kept": [k_0, k_1, …] } } }
//
// - padded: every expert is stored at its original shape with its pruned atoms as zeros (exact; any
//   loader runs it). `stored` is the original width; kept atoms stay where they were.
// - shrunk: each expert's kept atoms come first (gate/up rows, down columns) and the expert is padded with
//   zeros to the layer's widest kept expert W (one width per layer, as vLLM's fused MoE needs). sparq runs
//   each expert at its own kept width k_e: the view below hands out the first k_e rows/columns.
// k_e = 0 marks a removed expert (both formats): the checkpoint then holds a router bias (f32, −1e9 on
// removed experts' logits, 0 elsewhere), so the softmax gives them probability 0 and top-k never picks
// them. Loaders that do not know the record ignore that bias (Hugging Face warns about an unused weight).
import { InvalidFileError } from '../errors.js';
import type { TensorSource } from '../io/checkpoint.js';
import type { DType } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';
import type { Layout } from './layouts.js';

export interface ExpertWidths {
  format: 'padded' | 'shrunk';
  /** Per MoE layer index: the stored width of its experts and each expert's kept width (0: removed). */
  layers: Map<number, { stored: number; kept: number[] }>;
}

/** The logit bias that masks a removed expert: exp(−1e9 − max) is exactly 0 in float32 and float64. */
export const REMOVED_EXPERT_LOGIT_BIAS = -1e9;

/** Parses config.json's `sparq_experts` (absent: undefined); `experts` is the config's expert count. */
export function parseExpertWidths(json: Record<string, unknown>, source: string, layers: number, experts: number | undefined): ExpertWidths | undefined {
  const raw = json.sparq_experts;
  if (raw === undefined) return undefined;
  const bad = (why: string) => new InvalidFileError(`${source}: sparq_experts ${why}`);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('must be an object');
  const record = raw as Record<string, unknown>;
  if (record.format !== 'padded' && record.format !== 'shrunk') throw bad(`.format must be 'padded' or 'shrunk', found ${JSON.stringify(record.format)}`);
  if (experts === undefined) throw bad('is present, but the model has no routed experts');
  if (typeof record.layers !== 'object' || record.layers === null) throw bad('.layers must be an object');
  const parsed = new Map<number, { stored: number; kept: number[] }>();
  for (const [key, value] of Object.entries(record.layers as Record<string, unknown>)) {
    const layer = Number(key);
    if (!Number.isInteger(layer) || layer < 0 || layer >= layers) throw bad(`.layers: '${key}' is not a layer index below num_hidden_layers ${layers}`);
    const entry = value as { stored?: unknown; kept?: unknown };
    const stored = entry?.stored;
    if (!Number.isSafeInteger(stored) || (stored as number) < 1) throw bad(`.layers.${key}.stored must be a positive integer`);
    const kept = entry.kept;
    if (!Array.isArray(kept) || kept.length !== experts || !kept.every((k) => Number.isSafeInteger(k) && k >= 0 && k <= (stored as number))) {
      throw bad(`.layers.${key}.kept must list ${experts} widths between 0 and ${String(stored)}`);
    }
    if (kept.every((k) => k === 0)) throw bad(`.layers.${key}: every expert is removed`);
    parsed.set(layer, { stored: stored as number, kept: kept as number[] });
  }
  return { format: record.format, layers: parsed };
}

/** The width expert `expert` of `layer` is stored at (the config's width where the record is silent). */
export function storedExpertWidth(widths: ExpertWidths | undefined, layer: number, fallback: number): number {
  return widths?.layers.get(layer)?.stored ?? fallback;
}

/** The width sparq runs the expert at: its kept width in a shrunk folder (a removed expert keeps its stored zeros). */
export function runExpertWidth(widths: ExpertWidths | undefined, layer: number, expert: number, fallback: number): number {
  const entry = widths?.layers.get(layer);
  if (!entry || widths!.format !== 'shrunk') return entry?.stored ?? fallback;
  const kept = entry.kept[expert];
  return kept > 0 ? kept : entry.stored;
}

/** Whether `layer` has a removed expert (and so a router bias that masks it). */
export function hasRemovedExperts(widths: ExpertWidths | undefined, layer: number): boolean {
  return widths?.layers.get(layer)?.kept.some((k) => k === 0) ?? false;
}

/** The first `rows` rows of a row-major [R, C] tensor, or its first `columns` columns, as a new tensor. */
function leading(tensor: Tensor, rows: number, columns: number): Tensor {
  const C = tensor.shape[1];
  const source = tensor.contiguous().data as Float32Array;
  const out = new (source.constructor as new (n: number) => typeof source)(rows * columns);
  for (let r = 0; r < rows; ++r) out.set(source.subarray(r * C, r * C + columns), r * columns);
  return Tensor.fromTypedArray(out, [rows, columns], tensor.dtype);
}

/**
 * A shrunk folder's checkpoint as sparq runs it: each kept expert's gate/up weight is its first k rows, its
 * down weight its first k columns; every other tensor as stored. The stored shapes are checked here (the
 * layer's width from the record), the visible ones by the usual parameter check.
 */
export class ExpertWidthView implements TensorSource {
  private constructor(
    private readonly inner: TensorSource,
    /** Visible width and which axis it cuts, by tensor name. */
    private readonly cuts: Map<string, { width: number; axis: 0 | 1 }>,
  ) {}

  static async wrap(inner: TensorSource, widths: ExpertWidths, layout: Layout, hidden: number, configFile: string): Promise<TensorSource> {
    const moe = layout.experts;
    if (!moe) throw new InvalidFileError(`${configFile}: sparq_experts is present, but the architecture has no routed experts`);
    const cuts = new Map<string, { width: number; axis: 0 | 1 }>();
    for (const [layer, { stored, kept }] of widths.layers) {
      for (let e = 0; e < kept.length; ++e) {
        const base = `${layout.block(layer)}${moe.expert(e)}`;
        const names: [string, 0 | 1, number[]][] = [
          [`${base}${moe.gate}.weight`, 0, [stored, hidden]],
          [`${base}${moe.up}.weight`, 0, [stored, hidden]],
          [`${base}${moe.down}.weight`, 1, [hidden, stored]],
        ];
        for (const [name, axis, shape] of names) {
          if (!inner.has(name)) continue; // the parameter check names what is missing
          const info = await inner.info(name);
          if (info.shape.join(',') !== shape.join(',')) {
            throw new InvalidFileError(`${inner.dir}: tensor '${name}' has shape [${info.shape.join(', ')}], but ${configFile}'s sparq_experts stores layer ${layer}'s experts at width ${stored} ([${shape.join(', ')}])`);
          }
          if (widths.format === 'shrunk' && kept[e] > 0 && kept[e] < stored) cuts.set(name, { width: kept[e], axis });
        }
      }
    }
    return new ExpertWidthView(inner, cuts);
  }

  get dir(): string {
    return this.inner.dir;
  }

  names(): string[] {
    return this.inner.names();
  }

  has(name: string): boolean {
    return this.inner.has(name);
  }

  async info(name: string): Promise<{ name: string; dtype: string; shape: number[] }> {
    const info = await this.inner.info(name);
    const cut = this.cuts.get(name);
    if (!cut) return info;
    const shape = [...info.shape];
    shape[cut.axis] = cut.width;
    return { ...info, shape };
  }

  async read(name: string, options?: { dtype?: DType }): Promise<Tensor> {
    const tensor = await this.inner.read(name, options);
    const cut = this.cuts.get(name);
    if (!cut) return tensor;
    return cut.axis === 0 ? leading(tensor, cut.width, tensor.shape[1]) : leading(tensor, tensor.shape[0], cut.width);
  }

  shardPath(name: string): string {
    return this.inner.shardPath(name);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

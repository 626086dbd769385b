// How Elsa keeps its per-weight state: the split z and the scaled dual u of every constrained matrix, and
// Adam's moments m and v of every trained tensor. Elsa keeps all of them in f32 (with x and the gradient:
// about 6 copies of the weights). Elsa-L stores them smaller and decodes one tensor at a time per update:
//   z, u   'bf16': bfloat16 (round to nearest even)
//          'fp8' : FP8 E4M3 codes (lib/tensor/fp8.ts: ±448, 3 mantissa bits, subnormals, no infinities)
//                  times one f32 scale per tensor, scale = max|t|/448, rounded to the nearest code (ties to even)
//   m, v   8 bits, block-wise (blocks of 256 consecutive entries, one f32 scale each), as 8-bit Adam does:
//          m: signed linear codes, m ≈ max|m|_block · q/127, rounded to nearest;
//          v: unsigned codes on a fourth-root scale, v ≈ max(v)_block · (q/255)⁴, rounded UP, so a decoded
//             v is never below the true one. With round-to-nearest m (a nonzero code is at most twice the
//             value it stands for) the Adam ratio m/√v stays within 2× of the exact one: no entry whose
//             v rounds to 0 while m does not can take an lr/eps-sized step.
// Every store round-trips through `tensors()`/`restore()` bit for bit, so a resumed run continues exactly.
import { InvalidArgumentError, InvalidFileError } from '../errors.js';
import { adamwStepAsync } from '../tensor/nn-backward.js';
import { decodeE4M3, E4M3_MAX, encodeE4M3 } from '../tensor/fp8.js';
import { Tensor } from '../tensor/tensor.js';

export const SPLIT_STORAGE = ['f32', 'bf16', 'fp8'] as const;
export type SplitStorage = (typeof SPLIT_STORAGE)[number];
export const MOMENT_BITS = [32, 8] as const;
export type MomentBits = (typeof MOMENT_BITS)[number];

/** Bytes per entry of a z/u store and of the two moments together (scales not counted). */
export const SPLIT_BYTES: Record<SplitStorage, number> = { f32: 4, bf16: 2, fp8: 1 };
export const MOMENT_BYTES: Record<MomentBits, number> = { 32: 8, 8: 2 };

/**
 * Reusable decode buffers, one per role, grown to the largest tensor: a decoded value lives only until the
 * next decode of the same role, so Elsa-L never holds more than one tensor's worth of f32 per role (fresh
 * arrays per tensor and step would leave the garbage collector a model's worth to catch up on).
 */
const scratch = new Map<string, Float32Array>();
function scratchTensor(role: string, shape: readonly number[]): Tensor {
  const numel = shape.reduce((a, b) => a * b, 1);
  let buffer = scratch.get(role);
  if (!buffer || buffer.length < numel) {
    buffer = new Float32Array(numel);
    scratch.set(role, buffer);
  }
  return Tensor.fromTypedArray(buffer.subarray(0, numel), shape);
}

/** A tensor kept in some storage format, decoded to f32 for use and encoded back after. */
export interface StoredTensor {
  readonly shape: number[];
  /** The value as f32: the stored tensor itself for f32 storage (writes to it persist), else a decoded copy
   * in the buffer of `role`, valid until the next read with that role. */
  read(role: string): Tensor;
  /** Stores an f32 value (the same tensor `read` returned is fine). */
  write(value: Tensor): void;
  /** The stored form, for checkpoints. */
  tensors(prefix: string): [string, Tensor][];
  restore(get: (name: string) => Tensor, prefix: string): void;
}

/** A store holding `value`; f32 storage keeps the tensor itself (the caller hands it over), others encode it. */
export function storedTensor(storage: SplitStorage, value: Tensor): StoredTensor {
  const shape = [...value.shape];
  if (storage === 'f32') return new F32Store(value);
  const store = storage === 'bf16' ? new Bf16Store(shape) : new Fp8Store(shape);
  store.write(value);
  return store;
}

class F32Store implements StoredTensor {
  readonly shape: number[];
  constructor(private value: Tensor) {
    if (value.dtype !== 'f32' || !value.isContiguous) throw new InvalidArgumentError(`an f32 store needs a contiguous f32 tensor, got ${value.dtype}`);
    this.shape = [...value.shape];
  }
  read(_role: string): Tensor {
    return this.value;
  }
  write(value: Tensor): void {
    if (value !== this.value) (this.value.data as Float32Array).set(value.data as Float32Array);
  }
  tensors(prefix: string): [string, Tensor][] {
    return [[prefix, this.value]];
  }
  restore(get: (name: string) => Tensor, prefix: string): void {
    this.value = checked(get(prefix), prefix, 'f32', this.value.numel);
  }
}

class Bf16Store implements StoredTensor {
  private bits: Tensor;
  constructor(readonly shape: number[]) {
    this.bits = Tensor.zeros(shape, 'bf16');
  }
  read(role: string): Tensor {
    const out = scratchTensor(role, this.shape);
    const bits = this.bits.data as Uint16Array;
    const values = out.data as Float32Array;
    const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
    for (let i = 0; i < bits.length; ++i) words[i] = bits[i] << 16; // bf16 is the top half of an f32
    return out;
  }
  /** Rounds to nearest, ties to even, into the existing codes (no new array per z-step). */
  write(value: Tensor): void {
    const data = value.data as Float32Array;
    const words = new Uint32Array(data.buffer, data.byteOffset, data.length);
    const bits = this.bits.data as Uint16Array;
    for (let i = 0; i < words.length; ++i) {
      const w = words[i];
      bits[i] = (w & 0x7fffffff) > 0x7f800000 ? 0x7fc0 : (w + 0x7fff + ((w >>> 16) & 1)) >>> 16;
    }
  }
  tensors(prefix: string): [string, Tensor][] {
    return [[prefix, this.bits]];
  }
  restore(get: (name: string) => Tensor, prefix: string): void {
    this.bits = checked(get(prefix), prefix, 'bf16', this.bits.numel);
  }
}

class Fp8Store implements StoredTensor {
  private codes: Tensor;
  private scale = 0;
  constructor(readonly shape: number[]) {
    this.codes = Tensor.zeros(shape, 'u8');
  }
  read(role: string): Tensor {
    const codes = this.codes.data as Uint8Array;
    const result = scratchTensor(role, this.shape);
    const out = result.data as Float32Array;
    const table = new Float32Array(256);
    for (let c = 0; c < 256; ++c) table[c] = decodeE4M3(c) * this.scale;
    for (let i = 0; i < codes.length; ++i) out[i] = table[codes[i]];
    return result;
  }
  write(value: Tensor): void {
    const data = value.data as Float32Array;
    let max = 0;
    for (let i = 0; i < data.length; ++i) max = Math.max(max, Math.abs(data[i]));
    // The scale is kept as the f32 a checkpoint stores, so a resumed run decodes the same values.
    this.scale = Math.fround(max / E4M3_MAX);
    const codes = this.codes.data as Uint8Array;
    const inverse = this.scale > 0 ? 1 / this.scale : 0;
    for (let i = 0; i < data.length; ++i) codes[i] = encodeE4M3(data[i] * inverse);
  }
  tensors(prefix: string): [string, Tensor][] {
    return [
      [prefix, this.codes],
      [`${prefix}.scale`, Tensor.fromTypedArray(Float32Array.of(this.scale))],
    ];
  }
  restore(get: (name: string) => Tensor, prefix: string): void {
    this.codes = checked(get(prefix), prefix, 'u8', this.codes.numel);
    this.scale = (checked(get(`${prefix}.scale`), `${prefix}.scale`, 'f32', 1).data as Float32Array)[0];
  }
}

// ---- Adam's moments ----------------------------------------------------------------------------------

export interface AdamSettings {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** Adam's moments of one tensor, and the update that uses them. */
export interface Moments {
  /** One Adam step on `param` with gradient `grad` (Adam's step count `step`, from 1). */
  step(param: Tensor, grad: Tensor, step: number, settings: AdamSettings, signal?: AbortSignal): Promise<void>;
  /** The second moment v as f32 (objective-aware projection scores). */
  secondMoment(): Tensor;
  tensors(prefix: string): [string, Tensor][];
  restore(get: (name: string) => Tensor, prefix: string): void;
}

export function moments(bits: MomentBits, shape: number[]): Moments {
  return bits === 32 ? new F32Moments(shape) : new BlockwiseMoments(shape);
}

class F32Moments implements Moments {
  private m: Tensor;
  private v: Tensor;
  constructor(shape: number[]) {
    this.m = Tensor.zeros(shape);
    this.v = Tensor.zeros(shape);
  }
  step(param: Tensor, grad: Tensor, step: number, s: AdamSettings, signal?: AbortSignal): Promise<void> {
    return adamwStepAsync(param, grad, this.m, this.v, { ...s, step, signal });
  }
  secondMoment(): Tensor {
    return this.v;
  }
  tensors(prefix: string): [string, Tensor][] {
    return [
      [`${prefix}.m`, this.m],
      [`${prefix}.v`, this.v],
    ];
  }
  restore(get: (name: string) => Tensor, prefix: string): void {
    this.m = checked(get(`${prefix}.m`), `${prefix}.m`, 'f32', this.m.numel);
    this.v = checked(get(`${prefix}.v`), `${prefix}.v`, 'f32', this.v.numel);
  }
}

export const MOMENT_BLOCK = 256;
/** Entries of 8-bit moments decoded at a time for an Adam step (a multiple of MOMENT_BLOCK). */
const MOMENT_CHUNK = 1 << 20;

/** Block-wise 8-bit moments (see the file comment). */
class BlockwiseMoments implements Moments {
  private mCodes: Tensor;
  private vCodes: Tensor;
  private mScales: Tensor;
  private vScales: Tensor;
  constructor(readonly shape: number[]) {
    const numel = shape.reduce((a, b) => a * b, 1);
    const blocks = Math.ceil(numel / MOMENT_BLOCK);
    this.mCodes = Tensor.zeros(shape, 'i8');
    this.vCodes = Tensor.zeros(shape, 'u8');
    this.mScales = Tensor.zeros([blocks]);
    this.vScales = Tensor.zeros([blocks]);
  }

  /** Decoded into a shared buffer: valid until the next decode of any 8-bit second moment. */
  secondMoment(): Tensor {
    const result = scratchTensor('adam.v', this.shape);
    this.decode(result.data as Float32Array, undefined, 0, this.mCodes.numel);
    return result;
  }

  /** Decodes entries [start, end) of v (and of m, if given) into the fronts of the given arrays. */
  private decode(v: Float32Array, m: Float32Array | undefined, start: number, end: number): void {
    const mc = this.mCodes.data as Int8Array;
    const vc = this.vCodes.data as Uint8Array;
    const ms = this.mScales.data as Float32Array;
    const vs = this.vScales.data as Float32Array;
    for (let i = start; i < end; ++i) {
      const block = (i / MOMENT_BLOCK) | 0;
      const q = vc[i] / 255;
      v[i - start] = vs[block] * q * q * q * q;
      if (m) m[i - start] = (ms[block] * mc[i]) / 127;
    }
  }

  /** Encodes m and v, holding entries [start, end) at their fronts; start is a multiple of the block. */
  private encode(m: Float32Array, v: Float32Array, start: number, end: number): void {
    const mc = this.mCodes.data as Int8Array;
    const vc = this.vCodes.data as Uint8Array;
    const ms = this.mScales.data as Float32Array;
    const vs = this.vScales.data as Float32Array;
    for (let blockStart = start; blockStart < end; blockStart += MOMENT_BLOCK) {
      const b = blockStart / MOMENT_BLOCK;
      const blockEnd = Math.min(end, blockStart + MOMENT_BLOCK);
      let mMax = 0;
      let vMax = 0;
      for (let i = blockStart; i < blockEnd; ++i) {
        mMax = Math.max(mMax, Math.abs(m[i - start]));
        vMax = Math.max(vMax, v[i - start]);
      }
      ms[b] = mMax;
      vs[b] = vMax;
      const mInverse = mMax > 0 ? 127 / ms[b] : 0;
      const vInverse = vMax > 0 ? 1 / vs[b] : 0;
      for (let i = blockStart; i < blockEnd; ++i) {
        mc[i] = Math.max(-127, Math.min(127, Math.round(m[i - start] * mInverse)));
        // Round up on the fourth-root scale; the tiny slack keeps an exact code from rounding one past itself.
        vc[i] = Math.min(255, Math.ceil(255 * Math.sqrt(Math.sqrt(v[i - start] * vInverse)) - 1e-9));
      }
    }
  }

  /**
   * Adam on chunks of MOMENT_CHUNK entries: decode the chunk's m and v, step, encode. Decoding the whole
   * tensor at once would hold f32 moments of the largest tensor (the embeddings: vocabulary × hidden × 8
   * bytes) next to the 8-bit ones, a good part of what Elsa-L saves on a small model.
   */
  async step(param: Tensor, grad: Tensor, step: number, s: AdamSettings, signal?: AbortSignal): Promise<void> {
    const numel = this.mCodes.numel;
    const p = param.data as Float32Array;
    const g = grad.contiguous().data as Float32Array;
    const mBuffer = scratchTensor('adam.m', [Math.min(numel, MOMENT_CHUNK)]).data as Float32Array;
    const vBuffer = scratchTensor('adam.v', [Math.min(numel, MOMENT_CHUNK)]).data as Float32Array;
    for (let start = 0; start < numel; start += MOMENT_CHUNK) {
      const end = Math.min(numel, start + MOMENT_CHUNK);
      const n = end - start;
      const m = Tensor.fromTypedArray(mBuffer.subarray(0, n), [n]);
      const v = Tensor.fromTypedArray(vBuffer.subarray(0, n), [n]);
      this.decode(v.data as Float32Array, m.data as Float32Array, start, end);
      await adamwStepAsync(Tensor.fromTypedArray(p.subarray(start, end), [n]), Tensor.fromTypedArray(g.subarray(start, end), [n]), m, v, { ...s, step, signal });
      this.encode(m.data as Float32Array, v.data as Float32Array, start, end);
    }
  }

  tensors(prefix: string): [string, Tensor][] {
    return [
      [`${prefix}.m`, this.mCodes],
      [`${prefix}.m.scale`, this.mScales],
      [`${prefix}.v`, this.vCodes],
      [`${prefix}.v.scale`, this.vScales],
    ];
  }

  restore(get: (name: string) => Tensor, prefix: string): void {
    this.mCodes = checked(get(`${prefix}.m`), `${prefix}.m`, 'i8', this.mCodes.numel);
    this.mScales = checked(get(`${prefix}.m.scale`), `${prefix}.m.scale`, 'f32', this.mScales.numel);
    this.vCodes = checked(get(`${prefix}.v`), `${prefix}.v`, 'u8', this.vCodes.numel);
    this.vScales = checked(get(`${prefix}.v.scale`), `${prefix}.v.scale`, 'f32', this.vScales.numel);
  }
}

function checked(t: Tensor, name: string, dtype: string, numel: number): Tensor {
  if (t.dtype !== dtype || t.numel !== numel) throw new InvalidFileError(`checkpoint tensor ${name}: expected ${dtype} with ${numel} entries, found ${t.dtype} with ${t.numel}`);
  return t;
}

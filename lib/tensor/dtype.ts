// Element types. The numeric codes match native/core/dtype.h.

export type DType = 'f32' | 'f16' | 'bf16' | 'i8' | 'u8' | 'i32' | 'i64' | 'f64';

export type TypedArray =
  | Float32Array
  | Float64Array
  | Uint16Array
  | Int8Array
  | Uint8Array
  | Int32Array
  | BigInt64Array;

interface DTypeInfo {
  code: number;
  size: number;
  floating: boolean;
  /** The TypedArray that holds this dtype's raw elements (f16 and bf16 as their bits in Uint16Array). */
  array: { new (length: number): TypedArray; new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedArray };
}

const DTYPES: Record<DType, DTypeInfo> = {
  f32: { code: 0, size: 4, floating: true, array: Float32Array },
  f16: { code: 1, size: 2, floating: true, array: Uint16Array },
  bf16: { code: 2, size: 2, floating: true, array: Uint16Array },
  i8: { code: 3, size: 1, floating: false, array: Int8Array },
  u8: { code: 4, size: 1, floating: false, array: Uint8Array },
  i32: { code: 5, size: 4, floating: false, array: Int32Array },
  i64: { code: 6, size: 8, floating: false, array: BigInt64Array },
  f64: { code: 7, size: 8, floating: true, array: Float64Array },
};

export const ALL_DTYPES = Object.keys(DTYPES) as DType[];

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, value);
}

export function dtypeCode(dtype: DType): number {
  return DTYPES[dtype].code;
}

export function dtypeSize(dtype: DType): number {
  return DTYPES[dtype].size;
}

export function isFloatingDType(dtype: DType): boolean {
  return DTYPES[dtype].floating;
}

export function arrayTypeFor(dtype: DType): DTypeInfo['array'] {
  return DTYPES[dtype].array;
}

/** The dtype a TypedArray holds when the caller does not say; Uint16Array is ambiguous (f16 or bf16). */
export function dtypeOfArray(data: ArrayBufferView): DType | undefined {
  if (data instanceof Float32Array) return 'f32';
  if (data instanceof Float64Array) return 'f64';
  if (data instanceof Int8Array) return 'i8';
  if (data instanceof Uint8Array) return 'u8';
  if (data instanceof Int32Array) return 'i32';
  if (data instanceof BigInt64Array) return 'i64';
  return undefined;
}

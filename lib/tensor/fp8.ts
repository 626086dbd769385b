// FP8 E4M3, the OCP "E4M3FN" variant (safetensors F8_E4M3, torch.float8_e4m3fn): one sign bit, a 4-bit
// exponent with bias 7, 3 mantissa bits; exponent 0 holds the subnormals m/8·2⁻⁶; no infinities, and
// S.1111.111 (0x7f, 0xff) is NaN, so the largest finite value is 1.75·2⁸ = 448 (0x7e).
// One codec for sparq: HWPQ's FP8 weights, Elsa-L's FP8 state, and the F8_E4M3 tensors of safetensors.

export const E4M3_MAX = 448;
/** The code of +448, the largest finite value. */
export const E4M3_MAX_CODE = 0x7e;
/** The code an encoded NaN gets (positive NaN; 0xff is the other NaN). */
export const E4M3_NAN_CODE = 0x7f;

/** The value of every code, as f32 (each is exact in f32). */
export const E4M3_VALUES: Float32Array = (() => {
  const values = new Float32Array(256);
  for (let code = 0; code < 256; ++code) {
    const exponent = (code >> 3) & 0xf;
    const mantissa = code & 7;
    const magnitude = exponent === 0 ? (mantissa / 8) * 2 ** -6 : (1 + mantissa / 8) * 2 ** (exponent - 7);
    values[code] = code & 0x80 ? -magnitude : magnitude;
  }
  values[0x7f] = NaN;
  values[0xff] = NaN;
  return values;
})();

export function decodeE4M3(code: number): number {
  return E4M3_VALUES[code & 0xff];
}

/** v rounded to an integer, ties to the even one. */
function roundHalfEven(v: number): number {
  const floor = Math.floor(v);
  const fraction = v - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * The code of the E4M3 value nearest to x, ties to the even code (round to nearest even, as torch and
 * IEEE conversions do). |x| ≥ 448 saturates to ±448 instead of becoming NaN: the format has no infinity,
 * and a per-channel scale s = max|w|/448 maps the largest weight to 448 only up to the rounding of w/s,
 * which may land a hair above it — that weight must encode as 448, not as NaN (compressed-tensors
 * clamps to ±448 before its cast for the same reason; torch's bare cast of such a value gives NaN).
 * NaN encodes as 0x7f. The sign is kept, so −0 and negatives that round to zero give 0x80 (−0).
 */
export function encodeE4M3(x: number): number {
  if (Number.isNaN(x)) return E4M3_NAN_CODE;
  const sign = x < 0 || Object.is(x, -0) ? 0x80 : 0;
  const a = Math.abs(x);
  if (a >= E4M3_MAX) return sign | E4M3_MAX_CODE;
  // Subnormals (and the smallest normal, 8·2⁻⁹ = 2⁻⁶, where the rounding carries): steps of 2⁻⁹.
  if (a < 2 ** -6) return sign | roundHalfEven(a * 2 ** 9);
  let exponent = Math.floor(Math.log2(a));
  if (2 ** exponent > a) exponent -= 1;
  else if (2 ** (exponent + 1) <= a) exponent += 1;
  // a / 2^(e−3) is in [8, 16): the significand with 3 fraction bits; 16 carries into the next exponent,
  // which the code arithmetic below does by itself. Powers of two scale doubles exactly.
  const significand = roundHalfEven(a * 2 ** (3 - exponent));
  return sign | (((exponent + 7) << 3) + significand - 8);
}

/** Codes of every element of `values` (see encodeE4M3). */
export function encodeE4M3Array(values: ArrayLike<number>): Uint8Array {
  const codes = new Uint8Array(values.length);
  for (let i = 0; i < values.length; ++i) codes[i] = encodeE4M3(values[i]);
  return codes;
}

/** The f32 values of `codes`. */
export function decodeE4M3Array(codes: Uint8Array, out = new Float32Array(codes.length)): Float32Array {
  for (let i = 0; i < codes.length; ++i) out[i] = E4M3_VALUES[codes[i]];
  return out;
}

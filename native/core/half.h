// Scalar IEEE binary16 and bfloat16 conversions: the reference every vectorized or device path must
// match bit for bit. Rounding is to nearest, ties to even. NaN stays NaN in both directions (sign kept,
// quiet bit set, payload bits kept as far as they fit, as x86 F16C does); infinities and subnormals
// convert exactly.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SPARQ_HOST_DEVICE __host__ __device__
#else
#define SPARQ_HOST_DEVICE
#endif

namespace sparq {

SPARQ_HOST_DEVICE inline uint32_t floatBits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

SPARQ_HOST_DEVICE inline float bitsToFloat(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

SPARQ_HOST_DEVICE inline uint16_t floatToHalfRef(float f) {
  const uint32_t x = floatBits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t exponent = (x >> 23) & 0xFFu;
  const uint32_t mantissa = x & 0x7FFFFFu;
  if (exponent == 0xFFu) {
    if (mantissa == 0) return static_cast<uint16_t>(sign | 0x7C00u);
    return static_cast<uint16_t>(sign | 0x7E00u | (mantissa >> 13));
  }
  // Unbiased exponent; half has bias 15, float 127.
  const int32_t e = static_cast<int32_t>(exponent) - 127;
  if (e > 15) return static_cast<uint16_t>(sign | 0x7C00u);  // overflow to infinity
  if (e >= -14) {
    // Normal half: keep 10 mantissa bits, round the dropped 13 to nearest even. A carry out of the
    // mantissa correctly bumps the exponent (up to infinity).
    uint32_t h = (static_cast<uint32_t>(e + 15) << 10) | (mantissa >> 13);
    const uint32_t dropped = mantissa & 0x1FFFu;
    if (dropped > 0x1000u || (dropped == 0x1000u && (h & 1u))) h += 1;
    return static_cast<uint16_t>(sign | h);
  }
  if (e < -25) return static_cast<uint16_t>(sign);  // below half the smallest subnormal: zero
  // Subnormal half: value = m * 2^-24. Shift the full significand (with hidden bit) into place.
  const uint32_t significand = mantissa | 0x800000u;
  const int32_t shift = -e - 1;  // e = -15 -> 14 ... e = -25 -> 24 (bits dropped beyond the 10-bit field)
  uint32_t h = significand >> shift;
  const uint32_t dropped = significand & ((1u << shift) - 1u);
  const uint32_t halfway = 1u << (shift - 1);
  if (dropped > halfway || (dropped == halfway && (h & 1u))) h += 1;
  return static_cast<uint16_t>(sign | h);
}

SPARQ_HOST_DEVICE inline float halfToFloatRef(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu;
  uint32_t mantissa = h & 0x3FFu;
  if (exponent == 0x1Fu) {
    // NaN comes out quiet (as F16C's vcvtph2ps does), payload kept.
    if (mantissa != 0) return bitsToFloat(sign | 0x7FC00000u | (mantissa << 13));
    return bitsToFloat(sign | 0x7F800000u);
  }
  if (exponent != 0) return bitsToFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  if (mantissa == 0) return bitsToFloat(sign);
  // Subnormal half: normalize into a float.
  uint32_t e = 113;
  while ((mantissa & 0x400u) == 0) {
    mantissa <<= 1;
    --e;
  }
  return bitsToFloat(sign | (e << 23) | ((mantissa & 0x3FFu) << 13));
}

SPARQ_HOST_DEVICE inline uint16_t floatToBF16Ref(float f) {
  const uint32_t x = floatBits(f);
  if ((x & 0x7F800000u) == 0x7F800000u && (x & 0x7FFFFFu) != 0) {
    return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN, sign and top payload kept
  }
  const uint32_t roundingBias = 0x7FFFu + ((x >> 16) & 1u);
  return static_cast<uint16_t>((x + roundingBias) >> 16);
}

SPARQ_HOST_DEVICE inline float bf16ToFloatRef(uint16_t b) { return bitsToFloat(static_cast<uint32_t>(b) << 16); }

// Double to half / bfloat16 with a single rounding. Going through float with round-to-nearest would
// round twice; rounding to float "to odd" (truncate, then set the last bit if anything was dropped)
// keeps enough information for the final round-to-nearest-even to be exact, because float carries at
// least two more significand bits than either target.
SPARQ_HOST_DEVICE inline float doubleToFloatRoundToOdd(double d) {
  if (d != d) return static_cast<float>(d);
  float f = static_cast<float>(d);
  const double back = static_cast<double>(f);
  if (back == d) return f;
  uint32_t bits = floatBits(f);
  // Step toward zero if rounding went away from zero (also brings +-inf back to +-FLT_MAX).
  if ((back > d && d > 0) || (back < d && d < 0)) bits -= 1;
  return bitsToFloat(bits | 1u);
}

SPARQ_HOST_DEVICE inline uint16_t doubleToHalfRef(double d) { return floatToHalfRef(doubleToFloatRoundToOdd(d)); }

SPARQ_HOST_DEVICE inline uint16_t doubleToBF16Ref(double d) { return floatToBF16Ref(doubleToFloatRoundToOdd(d)); }

}  // namespace sparq

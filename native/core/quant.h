// Integer weight quantization, the grid shared by every backend (and by lib/compress/quantizer.ts, the
// TypeScript reference it must match). It follows compressed-tensors 0.18:
//   codes are signed b-bit integers, qmin = −2^(b−1), qmax = 2^(b−1) − 1
//   a group's range always includes 0: lo = min(min w, 0), hi = max(max w, 0)
//   symmetric   s = max(−lo, hi) / ((qmax − qmin)/2)            (amax/7.5 for 4 bits), z = 0
//   asymmetric  s = (hi − lo) / (qmax − qmin),  z = round(clamp(qmin − lo/s, qmin, qmax))
//   s is rounded to the dtype scales are stored in; s = 0 (an all-zero group) becomes that dtype's eps
//   q = round(clamp(w/s + z, qmin, qmax)),  w' = (q − z)·s          (round: to nearest, ties to even)
// Because 0 is inside every range and z is an integer, a zero weight always decodes to exactly 0.
#pragma once
#include <cmath>
#include <cstdint>

#include "dtype.h"
#include "half.h"

namespace sparq {

struct QuantGrid {
  int bits = 0;          // 0: no quantization
  int64_t groupSize = 0; // input columns per group (the row length for one scale per output channel)
  bool symmetric = true;
  DType scaleDType = DType::F32;  // F32, F16 or BF16: scales are rounded to it before use
};

inline int quantMin(int bits) { return -(1 << (bits - 1)); }
inline int quantMax(int bits) { return (1 << (bits - 1)) - 1; }

// The storage dtype's machine epsilon: what an all-zero group's scale becomes.
inline float scaleEpsilon(DType t) {
  switch (t) {
    case DType::BF16: return 0.0078125f;
    case DType::F16: return 0.0009765625f;
    default: return 1.1920929e-07f;
  }
}

inline float roundToDType(float x, DType t) {
  switch (t) {
    case DType::BF16: return bf16ToFloatRef(floatToBF16Ref(x));
    case DType::F16: return halfToFloatRef(floatToHalfRef(x));
    default: return x;
  }
}

// Round to nearest, ties to even, in the default floating-point environment.
inline float roundEven(float x) { return std::nearbyint(x); }

// The scale and zero point of a group whose weights span [minW, maxW].
inline void groupParams(float minW, float maxW, const QuantGrid& grid, float& scale, float& zero) {
  const float lo = std::fmin(minW, 0.0f), hi = std::fmax(maxW, 0.0f);
  const int qmin = quantMin(grid.bits), qmax = quantMax(grid.bits);
  const float range = static_cast<float>(qmax - qmin);
  float s = grid.symmetric ? std::fmax(-lo, hi) / (range / 2.0f) : (hi - lo) / range;
  s = roundToDType(s, grid.scaleDType);
  if (s == 0.0f) s = scaleEpsilon(grid.scaleDType);
  scale = s;
  zero = grid.symmetric ? 0.0f : roundEven(std::fmin(std::fmax(static_cast<float>(qmin) - lo / s, static_cast<float>(qmin)), static_cast<float>(qmax)));
}

// The code of one weight (a float holding an integer in [qmin, qmax]).
inline float quantizeValue(float w, float scale, float zero, float qmin, float qmax) {
  return roundEven(std::fmin(std::fmax(w / scale + zero, qmin), qmax));
}

// The weight a code stands for; + 0 turns a −0 (a code just below a zero point of 0) into +0, so zeros are
// stored as +0 whatever the rounding direction.
inline float dequantizeValue(float code, float zero, float scale) { return (code - zero) * scale + 0.0f; }

}  // namespace sparq

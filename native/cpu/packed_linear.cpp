// Linear layers on packed weights; see packed_linear.h and core/packed_formats.h for the layouts.
//
// Every format has a row decoder (W's row n as f32, checking what could be corrupt); it is the reference
// semantics and feeds the batched path: rows are decoded kRowsPerTile at a time into a thread-local tile
// that dotBlock multiplies with all tokens, so the decode cost is shared by the batch. Batch 1 is
// memory-bound, so on AVX-512 each format has a fused kernel that computes the dot products straight
// from the packed bytes:
//   int4    bytes widen to 32-bit lanes; a 16-entry permute maps each nibble to code − 8, and x is
//           pre-permuted within each 32-input span (even inputs, then odd) to match low/high nibbles.
//   2:4     the meta word of 16 kept values becomes lane indices 4·group + position, and one two-source
//           permute gathers the matching inputs from the 32-input span.
//   BSR     each block is a contiguous run of x; int4 blocks use the same nibble permute.
// Group scales multiply a group's partial dot product once (vector FMA), zero points are folded in with
// the group's input sum.
#include "packed_linear.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/packed_formats.h"
#include "core/pool.h"
#include "linalg.h"
#include "simd.h"

namespace sparq::cpu {

namespace {

constexpr int64_t kRowsPerTile = 8;

float loadFloat(const void* base, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::F16: return halfToFloatRef(static_cast<const uint16_t*>(base)[i]);
    case DType::BF16: return bf16ToFloatRef(static_cast<const uint16_t*>(base)[i]);
    default: return static_cast<const float*>(base)[i];
  }
}

int nibble(const uint8_t* bytes, int64_t i) { return (i & 1) ? bytes[i >> 1] >> 4 : bytes[i >> 1] & 15; }

[[noreturn]] void corrupt(const char* op, const std::string& what) { fail(ErrorCode::InvalidFile, std::string(op) + ": " + what); }

// ---------------------------------------------------------------- row decoders (the reference semantics)

struct Int4Rows {
  const uint8_t* packed;
  int64_t rowBytes;
  const void* scales;
  DType scaleType;
  const int8_t* zeros;  // null: symmetric
  int64_t groupSize, groups, k;

  void decode(int64_t n, float* out) const {
    const uint8_t* row = packed + n * rowBytes;
    for (int64_t c = 0; c < k; ++c) {
      const int64_t g = n * groups + c / groupSize;
      const int zero = zeros ? zeros[g] : 0;
      out[c] = static_cast<float>(nibble(row, c) - 8 - zero) * loadFloat(scales, scaleType, g);
    }
  }
};

// The input column of kept value j of a 2:4 row, checking that a group's two positions increase.
int64_t keptColumn(const int32_t* metaRow, int64_t j, int64_t n, const char* op) {
  const int position = (static_cast<uint32_t>(metaRow[j >> 4]) >> (2 * (j & 15))) & 3;
  if (j & 1) {
    const int first = (static_cast<uint32_t>(metaRow[(j - 1) >> 4]) >> (2 * ((j - 1) & 15))) & 3;
    if (position <= first) {
      corrupt(op, "meta of row " + std::to_string(n) + ", group " + std::to_string(j / 2) + " lists positions " +
                      std::to_string(first) + " and " + std::to_string(position) + " (must increase)");
    }
  }
  return 4 * (j >> 1) + position;
}

struct Sparse24Rows {
  const void* values;
  DType valueType;
  const int32_t* meta;
  int64_t kept, metaWords, k;

  void decode(int64_t n, float* out) const { decodeFrom(n, 0, out); }

  // Inputs 2·firstKept.. of row n (firstKept even: whole groups), from kept values firstKept on.
  void decodeFrom(int64_t n, int64_t firstKept, float* out) const {
    std::fill(out + std::min(k, 2 * firstKept), out + k, 0.0f);
    const int32_t* metaRow = meta + n * metaWords;
    for (int64_t j = firstKept; j < kept; ++j) {
      const int64_t c = keptColumn(metaRow, j, n, "sparse24Linear");
      const float v = loadFloat(values, valueType, n * kept + j);
      if (c < k) {
        out[c] = v;
      } else if (v != 0.0f) {
        corrupt("sparse24Linear", "row " + std::to_string(n) + " keeps a nonzero value past the last input");
      }
    }
  }
};

struct Sparse24Int4Rows {
  const uint8_t* packed;
  int64_t rowBytes;
  const int32_t* meta;
  const void* scales;
  DType scaleType;
  int64_t kept, metaWords, groupSize, groups, k;

  void decode(int64_t n, float* out) const { decodeFrom(n, 0, out); }

  // Inputs 2·firstKept.. of row n (firstKept even: whole groups), from kept values firstKept on.
  void decodeFrom(int64_t n, int64_t firstKept, float* out) const {
    std::fill(out + std::min(k, 2 * firstKept), out + k, 0.0f);
    const int32_t* metaRow = meta + n * metaWords;
    const uint8_t* row = packed + n * rowBytes;
    for (int64_t j = firstKept; j < kept; ++j) {
      const int64_t c = keptColumn(metaRow, j, n, "sparse24Int4Linear");
      const int code = nibble(row, j) - 8;
      if (c < k) {
        out[c] = static_cast<float>(code) * loadFloat(scales, scaleType, n * groups + c / groupSize);
      } else if (code != 0) {
        corrupt("sparse24Int4Linear", "row " + std::to_string(n) + " keeps a nonzero code past the last input");
      }
    }
  }
};

[[noreturn]] __attribute__((noinline, cold)) void badBlockColumn(const int32_t* blockCols, int64_t b, int64_t c,
                                                                  int64_t blockColumnCount, int64_t n, const char* op) {
  corrupt(op, "row " + std::to_string(n) + ": blockCols[" + std::to_string(b) + "] = " + std::to_string(c) +
                  (c < 0 || c >= blockColumnCount
                       ? " is outside 0.." + std::to_string(blockColumnCount - 1)
                       : " does not follow the row's previous block " + std::to_string(blockCols[b - 1])));
}

// Checks block b of row n (its column in range and after the previous block's) and returns its column.
inline int64_t blockColumn(const int32_t* blockCols, int64_t b, int64_t first, int64_t blockColumnCount, int64_t n,
                           const char* op) {
  const int64_t c = blockCols[b];
  if (__builtin_expect(c < 0 || c >= blockColumnCount || (b > first && c <= blockCols[b - 1]), 0)) {
    badBlockColumn(blockCols, b, c, blockColumnCount, n, op);
  }
  return c;
}

struct BsrRows {
  const int32_t* rowPtr;
  const int32_t* blockCols;
  int64_t blockSize, blockColumnCount, k;
  // Float values, or int4 codes with a scale per block.
  const void* values = nullptr;
  DType valueType = DType::F32;
  const uint8_t* packed = nullptr;
  const void* blockScales = nullptr;
  DType scaleType = DType::F32;
  const char* op = "";

  float value(int64_t b, int64_t i) const {
    if (!packed) return loadFloat(values, valueType, b * blockSize + i);
    return static_cast<float>(nibble(packed + b * (blockSize / 2), i) - 8) * loadFloat(blockScales, scaleType, b);
  }

  void decode(int64_t n, float* out) const {
    std::fill(out, out + k, 0.0f);
    for (int64_t b = rowPtr[n]; b < rowPtr[n + 1]; ++b) {
      const int64_t c0 = blockColumn(blockCols, b, rowPtr[n], blockColumnCount, n, op) * blockSize;
      for (int64_t i = 0; i < blockSize; ++i) {
        const float v = value(b, i);
        if (c0 + i < k) {
          out[c0 + i] = v;
        } else if (v != 0.0f) {
          corrupt(op, "row " + std::to_string(n) + ": block " + std::to_string(b) + " holds a nonzero value past the last input");
        }
      }
    }
  }
};

// Dense rows in f32, f16 or bf16 (the baseline the packed formats are measured against).
struct DenseRows {
  const void* values;
  DType valueType;
  int64_t k;

  void decode(int64_t n, float* out) const {
    for (int64_t c = 0; c < k; ++c) out[c] = loadFloat(values, valueType, n * k + c);
  }
};

// ---------------------------------------------------------------- the batched path: decoded tile × tokens

// out[c·R + r] = <w[r], x[c]> over k inputs, for R rows and C tokens.
template <int R, int C>
SPARQ_INLINE void dotBlockScalar(const float* const* w, const float* const* x, int64_t k, float* out) {
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      float acc = 0;
      for (int64_t i = 0; i < k; ++i) acc += w[r][i] * x[c][i];
      out[c * R + r] = acc;
    }
  }
}

#if SPARQ_X86
// The sum of 16 lanes, through memory: GCC 12's cross-lane shuffles (and _mm512_reduce_add_ps) trip
// -Wuninitialized inside its own headers, and this runs once per dot product, not per element.
SPARQ_TARGET_AVX512 inline float sum512(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float sum = 0;
  for (float lane : lanes) sum += lane;
  return sum;
}

template <int R, int C>
SPARQ_TARGET_AVX512 void dotBlock512(const float* const* w, const float* const* x, int64_t k, float* out) {
  __m512 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    __m512 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = _mm512_loadu_ps(w[r] + i);
    for (int c = 0; c < C; ++c) {
      const __m512 xv = _mm512_loadu_ps(x[c] + i);
      for (int r = 0; r < R; ++r) acc[r][c] = _mm512_fmadd_ps(wv[r], xv, acc[r][c]);
    }
  }
  if (i < k) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (k - i)) - 1);
    __m512 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = _mm512_maskz_loadu_ps(tail, w[r] + i);
    for (int c = 0; c < C; ++c) {
      const __m512 xv = _mm512_maskz_loadu_ps(tail, x[c] + i);
      for (int r = 0; r < R; ++r) acc[r][c] = _mm512_fmadd_ps(wv[r], xv, acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out[c * R + r] = sum512(acc[r][c]);
}

SPARQ_TARGET_AVX2 inline float sum256(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

template <int R, int C>
SPARQ_TARGET_AVX2 void dotBlock256(const float* const* w, const float* const* x, int64_t k, float* out) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = _mm256_loadu_ps(w[r] + i);
    for (int c = 0; c < C; ++c) {
      const __m256 xv = _mm256_loadu_ps(x[c] + i);
      for (int r = 0; r < R; ++r) acc[r][c] = _mm256_fmadd_ps(wv[r], xv, acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      float s = sum256(acc[r][c]);
      for (int64_t j = i; j < k; ++j) s += w[r][j] * x[c][j];
      out[c * R + r] = s;
    }
}
#endif

// y[t, n0 + r] (+)= <tile row r, x[t]> (+ bias) for rows r < rows and every token.
using TileKernel = void (*)(const float* tile, int64_t rows, const float* x, int64_t tokens, int64_t k, float* y,
                            int64_t ldy, int64_t n0, const float* bias, bool accumulate);

template <int R, int C, void (*Block)(const float* const*, const float* const*, int64_t, float*)>
SPARQ_INLINE void tileStep(const float* tile, int64_t r0, const float* x, int64_t t0, int64_t k, float* y, int64_t ldy,
                           int64_t n0, const float* bias, bool accumulate) {
  const float* w[R];
  const float* xs[C];
  for (int r = 0; r < R; ++r) w[r] = tile + (r0 + r) * k;
  for (int c = 0; c < C; ++c) xs[c] = x + (t0 + c) * k;
  float out[R * C];
  Block(w, xs, k, out);
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < R; ++r) {
      float& target = y[(t0 + c) * ldy + n0 + r0 + r];
      const float v = out[c * R + r] + (bias ? bias[n0 + r0 + r] : 0.0f);
      target = accumulate ? target + v : v;
    }
}

// Register blocks of 4 rows × 4 tokens (AVX-512: 16 accumulators), then 1-row and 1-token edges.
template <void (*B44)(const float* const*, const float* const*, int64_t, float*),
          void (*B41)(const float* const*, const float* const*, int64_t, float*),
          void (*B14)(const float* const*, const float* const*, int64_t, float*),
          void (*B11)(const float* const*, const float* const*, int64_t, float*)>
void multiplyTile(const float* tile, int64_t rows, const float* x, int64_t tokens, int64_t k, float* y, int64_t ldy,
                  int64_t n0, const float* bias, bool accumulate) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    int64_t t = 0;
    for (; t + 4 <= tokens; t += 4) tileStep<4, 4, B44>(tile, r, x, t, k, y, ldy, n0, bias, accumulate);
    for (; t < tokens; ++t) tileStep<4, 1, B41>(tile, r, x, t, k, y, ldy, n0, bias, accumulate);
  }
  for (; r < rows; ++r) {
    int64_t t = 0;
    for (; t + 4 <= tokens; t += 4) tileStep<1, 4, B14>(tile, r, x, t, k, y, ldy, n0, bias, accumulate);
    for (; t < tokens; ++t) tileStep<1, 1, B11>(tile, r, x, t, k, y, ldy, n0, bias, accumulate);
  }
}

TileKernel tileKernel() {
#if SPARQ_X86
  return pickKernel<TileKernel>(
      multiplyTile<dotBlockScalar<4, 4>, dotBlockScalar<4, 1>, dotBlockScalar<1, 4>, dotBlockScalar<1, 1>>,
      multiplyTile<dotBlock256<4, 4>, dotBlock256<4, 1>, dotBlock256<1, 4>, dotBlock256<1, 1>>,
      multiplyTile<dotBlock512<4, 4>, dotBlock512<4, 1>, dotBlock512<1, 4>, dotBlock512<1, 1>>);
#else
  return multiplyTile<dotBlockScalar<4, 4>, dotBlockScalar<4, 1>, dotBlockScalar<1, 4>, dotBlockScalar<1, 1>>;
#endif
}

// Writes one output of a fused batch-1 kernel.
inline void store(float* y, int64_t n, float value, const float* bias, bool accumulate) {
  if (bias) value += bias[n];
  y[n] = accumulate ? y[n] + value : value;
}

// ---------------------------------------------------------------- fused batch-1 kernels (AVX-512)

#if SPARQ_X86
// x with each full span of `span` inputs reordered: the even inputs, then the odd ones (int4 nibble order).
void permuteEvenOdd(const float* x, int64_t k, int64_t span, float* out) {
  const int64_t full = k / span * span;
  for (int64_t s = 0; s < full; s += span) {
    for (int64_t i = 0; i < span / 2; ++i) {
      out[s + i] = x[s + 2 * i];
      out[s + span / 2 + i] = x[s + 2 * i + 1];
    }
  }
  std::memcpy(out + full, x + full, static_cast<size_t>(k - full) * sizeof(float));
}

SPARQ_TARGET_AVX512 inline __m512 codeTable() {
  return _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
}

// Σ (code − 8)·xp over 32 codes (16 bytes) against the even/odd-permuted inputs: a 16-entry permute maps
// each nibble (the low 4 bits of a lane) straight to its code as a float.
SPARQ_TARGET_AVX512 inline __m512 int4Span32(const uint8_t* bytes, const float* xp, __m512 table, __m512 acc) {
  const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes)));
  acc = _mm512_fmadd_ps(_mm512_permutexvar_ps(b, table), _mm512_loadu_ps(xp), acc);
  return _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), table), _mm512_loadu_ps(xp + 16), acc);
}

// A scale in f32, with the hardware half conversion (the reference loadFloat converts in software).
SPARQ_TARGET_AVX512 inline float scaleAt(const void* scales, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::F16: return _cvtsh_ss(static_cast<const uint16_t*>(scales)[i]);
    case DType::BF16: return bf16ToFloatRef(static_cast<const uint16_t*>(scales)[i]);
    default: return static_cast<const float*>(scales)[i];
  }
}

// The `count` (≤ 16) consecutive scales from i in the low lanes, the others zero; masked loads never touch
// memory past the last scale.
SPARQ_TARGET_AVX512 inline __m512 scalesAt(const void* scales, DType dtype, int64_t i, __mmask16 lanes) {
  switch (dtype) {
    case DType::F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes, static_cast<const uint16_t*>(scales) + i));
    case DType::BF16:
      return _mm512_castsi512_ps(
          _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(lanes, static_cast<const uint16_t*>(scales) + i)), 16));
    default: return _mm512_maskz_loadu_ps(lanes, static_cast<const float*>(scales) + i);
  }
}

// R rows at a time: each span's inputs are loaded once for all R, and the R rows' FMA chains are
// independent, so the loop is bound by the decoding, not by FMA latency.
template <int R>
SPARQ_TARGET_AVX512 void int4Rows512(const Int4Rows& rows, const float* x, const float* xp, const float* groupSums,
                                     int64_t n0, float* y, const float* bias) {
  const __m512 table = codeTable();
  const int64_t k = rows.k, full = k / 32 * 32;
  const uint8_t* row[R];
  __m512 acc[R];
  float scalar[R];
  for (int r = 0; r < R; ++r) {
    row[r] = rows.packed + (n0 + r) * rows.rowBytes;
    acc[r] = _mm512_setzero_ps();
    scalar[r] = 0;
  }
  for (int64_t g = 0; g < rows.groups; ++g) {
    const int64_t start = g * rows.groupSize, stop = std::min(k, start + rows.groupSize);
    __m512 lo[R], hi[R];
    for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm512_setzero_ps();
    int64_t c = start;
    for (; c + 32 <= stop && c < full; c += 32) {
      const __m512 xLo = _mm512_loadu_ps(xp + c), xHi = _mm512_loadu_ps(xp + c + 16);
      for (int r = 0; r < R; ++r) {
        const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row[r] + c / 2)));
        lo[r] = _mm512_fmadd_ps(_mm512_permutexvar_ps(b, table), xLo, lo[r]);
        hi[r] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), table), xHi, hi[r]);
      }
    }
    for (int r = 0; r < R; ++r) {
      const int64_t gi = (n0 + r) * rows.groups + g;
      const float scale = scaleAt(rows.scales, rows.scaleType, gi);
      float tail = 0;
      for (int64_t t = c; t < stop; ++t) tail += static_cast<float>(nibble(row[r], t) - 8) * x[t];
      acc[r] = _mm512_fmadd_ps(_mm512_add_ps(lo[r], hi[r]), _mm512_set1_ps(scale), acc[r]);
      scalar[r] += scale * (tail - (rows.zeros ? static_cast<float>(rows.zeros[gi]) * groupSums[g] : 0.0f));
    }
  }
  for (int r = 0; r < R; ++r) store(y, n0 + r, sum512(acc[r]) + scalar[r], bias, false);
}

// Groups smaller than the 32-input span (2, 4, 8 or 16 inputs): lane L of a span's products covers inputs
// 2L and 2L + 1 (the even/odd order), so each lane takes its group's scale from a vector built per span;
// the zero points come back out per group at the end, and the inputs past the last span by the reference.
template <int R>
SPARQ_TARGET_AVX512 void int4SmallGroupRows512(const Int4Rows& rows, const float* x, const float* xp,
                                               const float* groupSums, int64_t n0, float* y, const float* bias) {
  const __m512 table = codeTable();
  const int64_t k = rows.k, full = k / 32 * 32, groupsPerSpan = 32 / rows.groupSize;
  alignas(64) int32_t laneGroupIndex[16];
  for (int lane = 0; lane < 16; ++lane) laneGroupIndex[lane] = static_cast<int32_t>(2 * lane / rows.groupSize);
  const __m512i laneGroup = _mm512_load_si512(laneGroupIndex);
  const __mmask16 spanLanes = static_cast<__mmask16>((1u << groupsPerSpan) - 1);
  const uint8_t* row[R];
  __m512 acc[R];
  for (int r = 0; r < R; ++r) {
    row[r] = rows.packed + (n0 + r) * rows.rowBytes;
    acc[r] = _mm512_setzero_ps();
  }
  for (int64_t c = 0; c < full; c += 32) {
    const __m512 xLo = _mm512_loadu_ps(xp + c), xHi = _mm512_loadu_ps(xp + c + 16);
    for (int r = 0; r < R; ++r) {
      const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row[r] + c / 2)));
      const __m512 products = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), table), xHi,
                                              _mm512_mul_ps(_mm512_permutexvar_ps(b, table), xLo));
      const __m512 spanScales = scalesAt(rows.scales, rows.scaleType, (n0 + r) * rows.groups + c / rows.groupSize, spanLanes);
      acc[r] = _mm512_fmadd_ps(products, _mm512_permutexvar_ps(laneGroup, spanScales), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const int64_t n = n0 + r;
    float scalar = 0;
    for (int64_t c = full; c < k; ++c) {
      scalar += static_cast<float>(nibble(row[r], c) - 8) * scaleAt(rows.scales, rows.scaleType, n * rows.groups + c / rows.groupSize) * x[c];
    }
    if (rows.zeros) {
      for (int64_t g = 0; g < rows.groups; ++g) {
        const int64_t gi = n * rows.groups + g;
        scalar -= scaleAt(rows.scales, rows.scaleType, gi) * static_cast<float>(rows.zeros[gi]) * groupSums[g];
      }
    }
    store(y, n, sum512(acc[r]) + scalar, bias, false);
  }
}

template <bool SmallGroups>
SPARQ_TARGET_AVX512 void int4Gemv512(const Int4Rows& rows, const float* x, const float* xp, const float* groupSums,
                                     int64_t begin, int64_t end, float* y, const float* bias) {
  int64_t n = begin;
  if constexpr (SmallGroups) {
    for (; n + 4 <= end; n += 4) int4SmallGroupRows512<4>(rows, x, xp, groupSums, n, y, bias);
    for (; n < end; ++n) int4SmallGroupRows512<1>(rows, x, xp, groupSums, n, y, bias);
  } else {
    for (; n + 4 <= end; n += 4) int4Rows512<4>(rows, x, xp, groupSums, n, y, bias);
    for (; n < end; ++n) int4Rows512<1>(rows, x, xp, groupSums, n, y, bias);
  }
}

// Lane indices 4·(lane/2) + position of 16 kept values from their meta word.
SPARQ_TARGET_AVX512 inline __m512i keptIndices(uint32_t meta) {
  const __m512i shifts = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i bases = _mm512_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28);
  const __m512i positions =
      _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(static_cast<int>(meta)), shifts), _mm512_set1_epi32(3));
  return _mm512_add_epi32(bases, positions);
}

template <DType V>
SPARQ_TARGET_AVX512 inline __m512 load16(const void* values, int64_t i) {
  if constexpr (V == DType::F16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(values) + i)));
  } else if constexpr (V == DType::BF16) {
    const __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(values) + i)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
  } else {
    return _mm512_loadu_ps(static_cast<const float*>(values) + i);
  }
}

template <DType V, int R>
SPARQ_TARGET_AVX512 void sparse24Rows512(const Sparse24Rows& rows, const float* x, int64_t n0, float* y, const float* bias) {
  const int64_t fullWords = rows.k / 32;  // words whose 16 kept values lie in 32 inputs inside x
  const int32_t* meta[R];
  __m512 acc[R];
  for (int r = 0; r < R; ++r) {
    meta[r] = rows.meta + (n0 + r) * rows.metaWords;
    acc[r] = _mm512_setzero_ps();
  }
  for (int64_t w = 0; w < fullWords; ++w) {
    const __m512 xLo = _mm512_loadu_ps(x + 32 * w), xHi = _mm512_loadu_ps(x + 32 * w + 16);
    for (int r = 0; r < R; ++r) {
      const __m512 xs = _mm512_permutex2var_ps(xLo, keptIndices(static_cast<uint32_t>(meta[r][w])), xHi);
      acc[r] = _mm512_fmadd_ps(load16<V>(rows.values, (n0 + r) * rows.kept + 16 * w), xs, acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const int64_t n = n0 + r;
    float tail = 0;
    for (int64_t j = 16 * fullWords; j < rows.kept; ++j) {
      const int64_t c = keptColumn(meta[r], j, n, "sparse24Linear");
      if (c < rows.k) tail += loadFloat(rows.values, rows.valueType, n * rows.kept + j) * x[c];
    }
    store(y, n, sum512(acc[r]) + tail, bias, false);
  }
}

template <DType V>
SPARQ_TARGET_AVX512 void sparse24Gemv512(const Sparse24Rows& rows, const float* x, int64_t begin, int64_t end, float* y,
                                         const float* bias) {
  int64_t n = begin;
  for (; n + 4 <= end; n += 4) sparse24Rows512<V, 4>(rows, x, n, y, bias);
  for (; n < end; ++n) sparse24Rows512<V, 1>(rows, x, n, y, bias);
}

// LaneScales: groups smaller than the 64-input chunk (4, 8, 16 or 32 inputs). Lane L of a chunk's products
// covers inputs 4L..4L+3 (its 2:4 group), so each lane takes its scale group's scale from a vector built
// per chunk, instead of one scale per run of whole chunks.
template <int R, bool LaneScales>
SPARQ_TARGET_AVX512 void sparse24Int4Rows512(const Sparse24Int4Rows& rows, const float* x, int64_t n0, float* y,
                                             const float* bias) {
  const __m512 table = codeTable();
  const int64_t groupsPerChunk = LaneScales ? 64 / rows.groupSize : 1;
  alignas(64) int32_t laneGroupIndex[16];
  for (int lane = 0; lane < 16; ++lane) laneGroupIndex[lane] = static_cast<int32_t>(4 * lane / rows.groupSize);
  const __m512i laneGroup = _mm512_load_si512(laneGroupIndex);
  const __mmask16 chunkLanes = static_cast<__mmask16>((1u << groupsPerChunk) - 1);
  const __m512i pickWord = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i firstShift = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
  const __m512i secondShift = _mm512_add_epi32(firstShift, _mm512_set1_epi32(2));
  const __m512i bases = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60);
  const __m512i three = _mm512_set1_epi32(3);
  const int64_t fullChunks = rows.k / 64;  // 32 kept values over 64 inputs inside x
  const int32_t* meta[R];
  const uint8_t* codes[R];
  __m512 acc[R], partial[R];
  for (int r = 0; r < R; ++r) {
    meta[r] = rows.meta + (n0 + r) * rows.metaWords;
    codes[r] = rows.packed + (n0 + r) * rows.rowBytes;
    acc[r] = partial[r] = _mm512_setzero_ps();
  }
  int64_t group = 0;
  for (int64_t ch = 0; ch < fullChunks; ++ch) {
    const int64_t c0 = 64 * ch;
    if (!LaneScales && c0 / rows.groupSize != group) {
      for (int r = 0; r < R; ++r) {
        acc[r] = _mm512_fmadd_ps(partial[r], _mm512_set1_ps(scaleAt(rows.scales, rows.scaleType, (n0 + r) * rows.groups + group)), acc[r]);
        partial[r] = _mm512_setzero_ps();
      }
      group = c0 / rows.groupSize;
    }
    const __m512 x0 = _mm512_loadu_ps(x + c0), x1 = _mm512_loadu_ps(x + c0 + 16);
    const __m512 x2 = _mm512_loadu_ps(x + c0 + 32), x3 = _mm512_loadu_ps(x + c0 + 48);
    for (int r = 0; r < R; ++r) {
      // Byte L holds kept values 2L (low nibble) and 2L + 1 (high), the two of group L of this chunk.
      const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes[r] + 16 * ch)));
      const __m512i words = _mm512_permutexvar_epi32(
          pickWord, _mm512_castsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(meta[r] + 2 * ch))));
      const __m512i first = _mm512_add_epi32(bases, _mm512_and_si512(_mm512_srlv_epi32(words, firstShift), three));
      const __m512i second = _mm512_add_epi32(bases, _mm512_and_si512(_mm512_srlv_epi32(words, secondShift), three));
      const __m512 xFirst =
          _mm512_mask_blend_ps(0xFF00, _mm512_permutex2var_ps(x0, first, x1), _mm512_permutex2var_ps(x2, first, x3));
      const __m512 xSecond =
          _mm512_mask_blend_ps(0xFF00, _mm512_permutex2var_ps(x0, second, x1), _mm512_permutex2var_ps(x2, second, x3));
      if constexpr (LaneScales) {
        const __m512 products = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), table), xSecond,
                                                _mm512_mul_ps(_mm512_permutexvar_ps(b, table), xFirst));
        const __m512 chunkScales = scalesAt(rows.scales, rows.scaleType, (n0 + r) * rows.groups + c0 / rows.groupSize, chunkLanes);
        acc[r] = _mm512_fmadd_ps(products, _mm512_permutexvar_ps(laneGroup, chunkScales), acc[r]);
      } else {
        partial[r] = _mm512_fmadd_ps(_mm512_permutexvar_ps(b, table), xFirst, partial[r]);
        partial[r] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), table), xSecond, partial[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    const int64_t n = n0 + r;
    if (!LaneScales && fullChunks > 0) {
      acc[r] = _mm512_fmadd_ps(partial[r], _mm512_set1_ps(scaleAt(rows.scales, rows.scaleType, n * rows.groups + group)), acc[r]);
    }
    float tail = 0;
    for (int64_t j = 32 * fullChunks; j < rows.kept; ++j) {
      const int64_t c = keptColumn(meta[r], j, n, "sparse24Int4Linear");
      if (c < rows.k) {
        tail += static_cast<float>(nibble(codes[r], j) - 8) * loadFloat(rows.scales, rows.scaleType, n * rows.groups + c / rows.groupSize) * x[c];
      }
    }
    store(y, n, sum512(acc[r]) + tail, bias, false);
  }
}

template <bool LaneScales>
SPARQ_TARGET_AVX512 void sparse24Int4Gemv512(const Sparse24Int4Rows& rows, const float* x, int64_t begin, int64_t end,
                                             float* y, const float* bias) {
  int64_t n = begin;
  for (; n + 2 <= end; n += 2) sparse24Int4Rows512<2, LaneScales>(rows, x, n, y, bias);
  for (; n < end; ++n) sparse24Int4Rows512<1, LaneScales>(rows, x, n, y, bias);
}

// The blocks of row n: each checked (in range, after the previous one) and given to `full` when it lies
// inside x, else to `partial` (the tail block, and rows of blocks narrower than a vector).
template <int BS, typename Full, typename Partial>
SPARQ_INLINE void forEachBlock(const BsrRows& rows, int64_t n, Full full, Partial partial) {
  const int32_t* cols = rows.blockCols;
  const int64_t first = rows.rowPtr[n], end = rows.rowPtr[n + 1];
  const int64_t insideX = BS >= 16 ? rows.k / BS : 0;
  int64_t previous = -1;
  for (int64_t b = first; b < end; ++b) {
    const int64_t c = cols[b];
    if (__builtin_expect(c <= previous || c >= rows.blockColumnCount, 0)) badBlockColumn(cols, b, c, rows.blockColumnCount, n, rows.op);
    previous = c;
    if (__builtin_expect(c < insideX, 1)) {
      full(b, c * BS);
    } else {
      partial(b, c * BS);
    }
  }
}

template <DType V, int BS>
SPARQ_TARGET_AVX512 void bsrRows512(const BsrRows& rows, const float* x, int64_t begin, int64_t end, float* y,
                                    const float* bias, bool accumulate) {
  for (int64_t n = begin; n < end; ++n) {
    // Two accumulators taking blocks in turn: consecutive blocks' FMAs do not wait on each other.
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    float tail = 0;
    forEachBlock<BS>(
        rows, n,
        [&](int64_t b, int64_t c0) SPARQ_TARGET_AVX512 {
          acc0 = _mm512_fmadd_ps(load16<V>(rows.values, b * BS), _mm512_loadu_ps(x + c0), acc0);
          if constexpr (BS == 32) acc1 = _mm512_fmadd_ps(load16<V>(rows.values, b * BS + 16), _mm512_loadu_ps(x + c0 + 16), acc1);
          std::swap(acc0, acc1);
        },
        [&](int64_t b, int64_t c0) {
          for (int64_t i = 0; i < BS && c0 + i < rows.k; ++i) tail += rows.value(b, i) * x[c0 + i];
        });
    store(y, n, sum512(_mm512_add_ps(acc0, acc1)) + tail, bias, accumulate);
  }
}

template <DType V>
SPARQ_TARGET_AVX512 void bsrGemv512(const BsrRows& rows, const float* x, int64_t begin, int64_t end, float* y,
                                    const float* bias, bool accumulate) {
  switch (rows.blockSize) {
    case 32: bsrRows512<V, 32>(rows, x, begin, end, y, bias, accumulate); break;
    case 16: bsrRows512<V, 16>(rows, x, begin, end, y, bias, accumulate); break;
    case 8: bsrRows512<V, 8>(rows, x, begin, end, y, bias, accumulate); break;
    default: bsrRows512<V, 1>(rows, x, begin, end, y, bias, accumulate); break;
  }
}

template <DType V>
SPARQ_TARGET_AVX512 void denseGemv512(const DenseRows& rows, const float* x, int64_t begin, int64_t end, float* y,
                                      const float* bias) {
  const int64_t k = rows.k, full = k / 16 * 16;
  for (int64_t n = begin; n < end; ++n) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t c = 0;
    for (; c + 32 <= full; c += 32) {
      acc0 = _mm512_fmadd_ps(load16<V>(rows.values, n * k + c), _mm512_loadu_ps(x + c), acc0);
      acc1 = _mm512_fmadd_ps(load16<V>(rows.values, n * k + c + 16), _mm512_loadu_ps(x + c + 16), acc1);
    }
    for (; c < full; c += 16) acc0 = _mm512_fmadd_ps(load16<V>(rows.values, n * k + c), _mm512_loadu_ps(x + c), acc0);
    float tail = 0;
    for (; c < k; ++c) tail += loadFloat(rows.values, rows.valueType, n * k + c) * x[c];
    store(y, n, sum512(_mm512_add_ps(acc0, acc1)) + tail, bias, false);
  }
}

// Int4 blocks of 16 or 32 inputs against x permuted in spans of the block size.
template <int BS>
SPARQ_TARGET_AVX512 void bsrInt4Rows512(const BsrRows& rows, const float* x, const float* xp, int64_t begin, int64_t end,
                                        float* y, const float* bias) {
  const __m512 table = codeTable();
  const __m512i twice = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7);
  const __m512i halves = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4);
  for (int64_t n = begin; n < end; ++n) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    float tail = 0;
    forEachBlock<BS>(
        rows, n,
        [&](int64_t b, int64_t c0) SPARQ_TARGET_AVX512 {
          const uint8_t* bytes = rows.packed + b * (BS / 2);
          const __m512 scale = _mm512_set1_ps(scaleAt(rows.blockScales, rows.scaleType, b));
          __m512 partial;
          if constexpr (BS == 32) {
            partial = int4Span32(bytes, xp + c0, table, _mm512_setzero_ps());
          } else {
            // 8 bytes: lanes 0-7 take the low nibbles (even inputs), lanes 8-15 the high ones (odd inputs).
            const __m512i b8 = _mm512_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes)));
            const __m512i codes = _mm512_srlv_epi32(_mm512_permutexvar_epi32(twice, b8), halves);
            partial = _mm512_mul_ps(_mm512_permutexvar_ps(codes, table), _mm512_loadu_ps(xp + c0));
          }
          acc0 = _mm512_fmadd_ps(partial, scale, acc0);
          std::swap(acc0, acc1);
        },
        [&](int64_t b, int64_t c0) {
          for (int64_t i = 0; i < BS && c0 + i < rows.k; ++i) tail += rows.value(b, i) * x[c0 + i];
        });
    store(y, n, sum512(_mm512_add_ps(acc0, acc1)) + tail, bias, false);
  }
}

SPARQ_TARGET_AVX512 void bsrInt4Gemv512(const BsrRows& rows, const float* x, const float* xp, int64_t begin, int64_t end,
                                        float* y, const float* bias) {
  switch (rows.blockSize) {
    case 32: bsrInt4Rows512<32>(rows, x, xp, begin, end, y, bias); break;
    case 16: bsrInt4Rows512<16>(rows, x, xp, begin, end, y, bias); break;
    default: bsrInt4Rows512<8>(rows, x, xp, begin, end, y, bias); break;
  }
}
#endif

// ---------------------------------------------------------------- fast tile decoders (AVX-512)
// The batched path decodes every row once per call; these write the same values as the reference
// decoders (bit for bit), in the column order fastSpan gives (0: natural; s: each full span of s inputs
// reordered even inputs first, as x is then permuted too). They return false on data the reference
// decoder must look at (it then reports the corruption).

#if SPARQ_X86
SPARQ_TARGET_AVX512 bool fastDecode(const DenseRows& rows, int64_t n, float* out) {
  const int64_t k = rows.k, full = k / 16 * 16;
  int64_t c = 0;
  switch (rows.valueType) {
    case DType::F16:
      for (; c < full; c += 16) _mm512_storeu_ps(out + c, load16<DType::F16>(rows.values, n * k + c));
      break;
    case DType::BF16:
      for (; c < full; c += 16) _mm512_storeu_ps(out + c, load16<DType::BF16>(rows.values, n * k + c));
      break;
    default:
      std::memcpy(out, static_cast<const float*>(rows.values) + n * k, static_cast<size_t>(k) * sizeof(float));
      return true;
  }
  for (; c < k; ++c) out[c] = loadFloat(rows.values, rows.valueType, n * k + c);
  return true;
}
int64_t fastSpan(const DenseRows&) { return 0; }
bool fastDecodable(const DenseRows&) { return true; }

SPARQ_TARGET_AVX512 bool fastDecode(const Int4Rows& rows, int64_t n, float* out) {
  const __m512 table = codeTable();
  const int64_t k = rows.k, full = k / 32 * 32;
  const uint8_t* row = rows.packed + n * rows.rowBytes;
  for (int64_t g = 0; g < rows.groups; ++g) {
    const int64_t start = g * rows.groupSize, stop = std::min(k, start + rows.groupSize);
    const int64_t gi = n * rows.groups + g;
    const int zero = rows.zeros ? rows.zeros[gi] : 0;
    const float scale = scaleAt(rows.scales, rows.scaleType, gi);
    const __m512 codes = _mm512_sub_ps(table, _mm512_set1_ps(static_cast<float>(zero)));
    const __m512 scales = _mm512_set1_ps(scale);
    int64_t c = start;
    for (; c + 32 <= stop && c < full; c += 32) {
      const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c / 2)));
      _mm512_storeu_ps(out + c, _mm512_mul_ps(_mm512_permutexvar_ps(b, codes), scales));
      _mm512_storeu_ps(out + c + 16, _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), codes), scales));
    }
    for (; c < stop; ++c) out[c] = static_cast<float>(nibble(row, c) - 8 - zero) * scale;
  }
  return true;
}
int64_t fastSpan(const Int4Rows&) { return 32; }
bool fastDecodable(const Int4Rows& rows) { return rows.groupSize % 32 == 0 || rows.groupSize >= rows.k; }

// For each meta byte (two groups' positions): the 8-input mask of the kept inputs, or 0 when a group's
// positions do not increase (never a valid mask: each valid group keeps two inputs).
struct KeptMaskTable {
  uint8_t mask[256];
  constexpr KeptMaskTable() : mask() {
    for (int byte = 0; byte < 256; ++byte) {
      int bits = 0;
      bool valid = true;
      for (int g = 0; g < 2; ++g) {
        const int first = (byte >> (4 * g)) & 3, second = (byte >> (4 * g + 2)) & 3;
        valid = valid && first < second;
        bits |= ((1 << first) | (1 << second)) << (4 * g);
      }
      mask[byte] = static_cast<uint8_t>(valid ? bits : 0);
    }
  }
};
constexpr KeptMaskTable kKeptMasks;

// The input mask of 8 groups of 4 (32 inputs) from a meta word; `valid` turns false on a bad group.
inline uint32_t keptMask(uint32_t meta, bool& valid) {
  const uint32_t m0 = kKeptMasks.mask[meta & 255], m1 = kKeptMasks.mask[(meta >> 8) & 255];
  const uint32_t m2 = kKeptMasks.mask[(meta >> 16) & 255], m3 = kKeptMasks.mask[meta >> 24];
  valid &= (m0 != 0) & (m1 != 0) & (m2 != 0) & (m3 != 0);
  return m0 | (m1 << 8) | (m2 << 16) | (m3 << 24);
}

// Spreads 16 kept values over the 32 inputs of their meta word.
SPARQ_TARGET_AVX512 inline void expandKept(__m512 kept, uint32_t mask, float* out) {
  _mm512_storeu_ps(out, _mm512_maskz_expand_ps(static_cast<__mmask16>(mask & 0xFFFF), kept));
  _mm512_storeu_ps(out + 16, _mm512_maskz_expand_ps(static_cast<__mmask16>(mask >> 16), _mm512_shuffle_f32x4(kept, kept, _MM_SHUFFLE(3, 2, 3, 2))));
}

SPARQ_TARGET_AVX512 bool fastDecode(const Sparse24Rows& rows, int64_t n, float* out) {
  const int64_t fullWords = rows.k / 32;
  const uint32_t* meta = reinterpret_cast<const uint32_t*>(rows.meta + n * rows.metaWords);
  bool valid = true;
  for (int64_t w = 0; w < fullWords; ++w) {
    const uint32_t mask = keptMask(meta[w], valid);
    __m512 kept;
    switch (rows.valueType) {
      case DType::F16: kept = load16<DType::F16>(rows.values, n * rows.kept + 16 * w); break;
      case DType::BF16: kept = load16<DType::BF16>(rows.values, n * rows.kept + 16 * w); break;
      default: kept = load16<DType::F32>(rows.values, n * rows.kept + 16 * w); break;
    }
    expandKept(kept, mask, out + 32 * w);
  }
  if (!valid) return false;
  // The inputs past the last full meta word, by the reference semantics (and its checks).
  rows.decodeFrom(n, 16 * fullWords, out);
  return true;
}
int64_t fastSpan(const Sparse24Rows&) { return 0; }
bool fastDecodable(const Sparse24Rows&) { return true; }

SPARQ_TARGET_AVX512 bool fastDecode(const Sparse24Int4Rows& rows, int64_t n, float* out) {
  const __m512 table = codeTable();
  const __m512i pairs = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512i nibbles = _mm512_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4);
  const int64_t fullWords = rows.k / 32;
  const uint32_t* meta = reinterpret_cast<const uint32_t*>(rows.meta + n * rows.metaWords);
  const uint8_t* codes = rows.packed + n * rows.rowBytes;
  bool valid = true;
  for (int64_t w = 0; w < fullWords; ++w) {
    const uint32_t mask = keptMask(meta[w], valid);
    // 8 bytes hold the word's 16 kept codes; lane L takes byte L/2's low or high nibble.
    const __m512i b8 = _mm512_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + 8 * w)));
    const __m512i stored = _mm512_srlv_epi32(_mm512_permutexvar_epi32(pairs, b8), nibbles);
    const float scale = scaleAt(rows.scales, rows.scaleType, n * rows.groups + 32 * w / rows.groupSize);
    expandKept(_mm512_mul_ps(_mm512_permutexvar_ps(stored, table), _mm512_set1_ps(scale)), mask, out + 32 * w);
  }
  if (!valid) return false;
  // The inputs past the last full meta word, by the reference semantics (and its checks).
  rows.decodeFrom(n, 16 * fullWords, out);
  return true;
}
int64_t fastSpan(const Sparse24Int4Rows&) { return 0; }
bool fastDecodable(const Sparse24Int4Rows& rows) { return rows.groupSize % 32 == 0; }

template <int BS>
SPARQ_TARGET_AVX512 void fastDecodeBlocks(const BsrRows& rows, int64_t n, float* out) {
  const __m512 table = codeTable();
  const __m512i twice = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7);
  const __m512i halves = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4);
  std::fill(out, out + rows.k, 0.0f);
  forEachBlock<BS>(
      rows, n,
      [&](int64_t b, int64_t c0) SPARQ_TARGET_AVX512 {
        if (rows.packed) {
          // Int4: the block in its even/odd order (x is permuted in spans of BS to match).
          const uint8_t* bytes = rows.packed + b * (BS / 2);
          const __m512 scale = _mm512_set1_ps(scaleAt(rows.blockScales, rows.scaleType, b));
          if constexpr (BS == 32) {
            const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes)));
            _mm512_storeu_ps(out + c0, _mm512_mul_ps(_mm512_permutexvar_ps(v, table), scale));
            _mm512_storeu_ps(out + c0 + 16, _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table), scale));
          } else {
            const __m512i b8 = _mm512_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes)));
            const __m512i stored = _mm512_srlv_epi32(_mm512_permutexvar_epi32(twice, b8), halves);
            _mm512_storeu_ps(out + c0, _mm512_mul_ps(_mm512_permutexvar_ps(stored, table), scale));
          }
          return;
        }
        for (int64_t i = 0; i < BS; i += 16) {
          switch (rows.valueType) {
            case DType::F16: _mm512_storeu_ps(out + c0 + i, load16<DType::F16>(rows.values, b * BS + i)); break;
            case DType::BF16: _mm512_storeu_ps(out + c0 + i, load16<DType::BF16>(rows.values, b * BS + i)); break;
            default: _mm512_storeu_ps(out + c0 + i, load16<DType::F32>(rows.values, b * BS + i)); break;
          }
        }
      },
      [&](int64_t b, int64_t c0) {
        for (int64_t i = 0; i < BS; ++i) {
          const float v = rows.value(b, i);
          if (c0 + i < rows.k) {
            out[c0 + i] = v;
          } else if (v != 0.0f) {
            corrupt(rows.op, "row " + std::to_string(n) + ": block " + std::to_string(b) + " holds a nonzero value past the last input");
          }
        }
      });
}

SPARQ_TARGET_AVX512 bool fastDecode(const BsrRows& rows, int64_t n, float* out) {
  switch (rows.blockSize) {
    case 32: fastDecodeBlocks<32>(rows, n, out); break;
    case 16: fastDecodeBlocks<16>(rows, n, out); break;
    case 8: fastDecodeBlocks<8>(rows, n, out); break;
    default: fastDecodeBlocks<1>(rows, n, out); break;
  }
  return true;
}
int64_t fastSpan(const BsrRows& rows) { return rows.packed && rows.blockSize >= 16 ? rows.blockSize : 0; }
bool fastDecodable(const BsrRows&) { return true; }
#endif

template <class Rows>
void linearByTiles(const Rows& rows, const TensorView& x, const TensorView& bias, bool accumulate, TensorView& y) {
  const int64_t tokens = x.shape[0], k = x.shape[1], n = y.shape[1];
  const TileKernel multiply = tileKernel();
  const float* biasData = bias.numel() > 0 ? bias.as<float>() : nullptr;
#if SPARQ_X86
  const bool fast = activeIsa() == Isa::Avx512 && fastDecodable(rows);
  const int64_t span = fast ? fastSpan(rows) : 0;
#else
  const bool fast = false;
  const int64_t span = 0;
#endif
  // The fast decoders may write rows in an even/odd order within spans; x follows the same order.
  std::vector<float> permuted;
  const float* xs = x.as<float>();
#if SPARQ_X86
  if (span > 0) {
    permuted.resize(static_cast<size_t>(tokens * k));
    for (int64_t t = 0; t < tokens; ++t) permuteEvenOdd(xs + t * k, k, span, permuted.data() + t * k);
    xs = permuted.data();
  }
#endif
  const int64_t tiles = (n + kRowsPerTile - 1) / kRowsPerTile;
  parallelFor(tiles, 1, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> tile;
    tile.resize(static_cast<size_t>(kRowsPerTile * k));
    for (int64_t t = begin; t < end; ++t) {
      throwIfCancelled();
      const int64_t n0 = t * kRowsPerTile, count = std::min(kRowsPerTile, n - n0);
      for (int64_t r = 0; r < count; ++r) {
        float* out = tile.data() + r * k;
#if SPARQ_X86
        if (fast && fastDecode(rows, n0 + r, out)) continue;
#endif
        rows.decode(n0 + r, out);  // the reference, which also reports what the fast decoder refused
      }
      multiply(tile.data(), count, xs, tokens, k, y.as<float>(), n, n0, biasData, accumulate);
    }
  });
}

bool fusedBatchOne(const TensorView& x) {
#if SPARQ_X86
  return x.shape[0] == 1 && activeIsa() == Isa::Avx512;
#else
  (void)x;
  return false;
#endif
}

constexpr int64_t kGemvGrain = 16;

}  // namespace

// ---------------------------------------------------------------- the ops

void denseLinear(const TensorView& x, const TensorView& w, const TensorView& bias, TensorView& y) {
  DenseRows rows{w.data, w.dtype, x.shape[1]};
  const float* biasData = bias.numel() > 0 ? bias.as<float>() : nullptr;
#if SPARQ_X86
  if (fusedBatchOne(x)) {
    parallelFor(y.shape[1], kGemvGrain, [&](int64_t begin, int64_t end) {
      throwIfCancelled();
      switch (w.dtype) {
        case DType::F16: denseGemv512<DType::F16>(rows, x.as<float>(), begin, end, y.as<float>(), biasData); break;
        case DType::BF16: denseGemv512<DType::BF16>(rows, x.as<float>(), begin, end, y.as<float>(), biasData); break;
        default: denseGemv512<DType::F32>(rows, x.as<float>(), begin, end, y.as<float>(), biasData); break;
      }
    });
    return;
  }
#endif
  if (w.dtype == DType::F32 && x.shape[0] > 1) {
    // OpenBLAS, then the bias: the f32 batch needs no decoding.
    gemm(x, false, w, true, y, 1.0, 0.0);
    if (biasData) {
      float* ys = y.as<float>();
      const int64_t n = y.shape[1];
      for (int64_t t = 0; t < y.shape[0]; ++t)
        for (int64_t i = 0; i < n; ++i) ys[t * n + i] += biasData[i];
    }
    return;
  }
  linearByTiles(rows, x, bias, false, y);
}

void int4Linear(const TensorView& x, const TensorView& packed, const TensorView& scales, const TensorView& zeros,
                int64_t groupSize, const TensorView& bias, TensorView& y) {
  const int64_t k = x.shape[1];
  Int4Rows rows{packed.as<uint8_t>(), packed.shape[1] * 4, scales.data, scales.dtype,
                zeros.numel() > 0 ? zeros.as<int8_t>() : nullptr, groupSize, scales.shape[1], k};
#if SPARQ_X86
  const bool wholeSpans = groupSize % 32 == 0 || groupSize >= k;
  const bool smallGroups = !wholeSpans && groupSize % 2 == 0 && 32 % groupSize == 0;
  if (fusedBatchOne(x) && (wholeSpans || smallGroups)) {
    const float* xs = x.as<float>();
    std::vector<float> xp(static_cast<size_t>(k)), groupSums(static_cast<size_t>(rows.groups), 0.0f);
    permuteEvenOdd(xs, k, 32, xp.data());
    if (rows.zeros) {  // zero points come back out through the groups' input sums
      for (int64_t c = 0; c < k; ++c) groupSums[c / groupSize] += xs[c];
    }
    const float* biasData = bias.numel() > 0 ? bias.as<float>() : nullptr;
    parallelFor(y.shape[1], kGemvGrain, [&](int64_t begin, int64_t end) {
      throwIfCancelled();
      if (smallGroups) int4Gemv512<true>(rows, xs, xp.data(), groupSums.data(), begin, end, y.as<float>(), biasData);
      else int4Gemv512<false>(rows, xs, xp.data(), groupSums.data(), begin, end, y.as<float>(), biasData);
    });
    return;
  }
#endif
  linearByTiles(rows, x, bias, false, y);
}

void sparse24Linear(const TensorView& x, const TensorView& values, const TensorView& meta, const TensorView& bias,
                    TensorView& y) {
  Sparse24Rows rows{values.data, values.dtype, meta.as<int32_t>(), values.shape[1], meta.shape[1], x.shape[1]};
#if SPARQ_X86
  if (fusedBatchOne(x)) {
    const float* biasData = bias.numel() > 0 ? bias.as<float>() : nullptr;
    parallelFor(y.shape[1], kGemvGrain, [&](int64_t begin, int64_t end) {
      throwIfCancelled();
      switch (values.dtype) {
        case DType::F16: sparse24Gemv512<DType::F16>(rows, x.as<float>(), begin, end, y.as<float>(), biasData); break;
        case DType::BF16: sparse24Gemv512<DType::BF16>(rows, x.as<float>(), begin, end, y.as<float>(), biasData); break;
        default: sparse24Gemv512<DType::F32>(rows, x.as<float>(), begin, end, y.as<float>(), biasData); break;
      }
    });
    return;
  }
#endif
  linearByTiles(rows, x, bias, false, y);
}

void sparse24Int4Linear(const TensorView& x, const TensorView& packed, const TensorView& meta, const TensorView& scales,
                        int64_t groupSize, const TensorView& bias, TensorView& y) {
  const int64_t k = x.shape[1];
  Sparse24Int4Rows rows{packed.as<uint8_t>(), packed.shape[1] * 4, meta.as<int32_t>(), scales.data, scales.dtype,
                        sparse24Kept(k), meta.shape[1], groupSize, scales.shape[1], k};
#if SPARQ_X86
  const bool wholeChunks = groupSize % 64 == 0 || groupSize >= k;
  const bool laneScales = !wholeChunks && groupSize % 4 == 0 && 64 % groupSize == 0;
  if (fusedBatchOne(x) && (wholeChunks || laneScales)) {
    const float* biasData = bias.numel() > 0 ? bias.as<float>() : nullptr;
    parallelFor(y.shape[1], kGemvGrain, [&](int64_t begin, int64_t end) {
      throwIfCancelled();
      if (laneScales) sparse24Int4Gemv512<true>(rows, x.as<float>(), begin, end, y.as<float>(), biasData);
      else sparse24Int4Gemv512<false>(rows, x.as<float>(), begin, end, y.as<float>(), biasData);
    });
    return;
  }
#endif
  linearByTiles(rows, x, bias, false, y);
}

void bsrLinear(const TensorView& x, const TensorView& rowPtr, const TensorView& blockCols, const TensorView& values,
               int64_t blockSize, const TensorView& bias, bool accumulate, TensorView& y) {
  const int64_t k = x.shape[1];
  BsrRows rows{rowPtr.as<int32_t>(), blockCols.as<int32_t>(), blockSize, blockColumns(k, blockSize), k};
  rows.values = values.data;
  rows.valueType = values.dtype;
  rows.op = "bsrLinear";
#if SPARQ_X86
  if (fusedBatchOne(x)) {
    const float* biasData = bias.numel() > 0 ? bias.as<float>() : nullptr;
    parallelFor(y.shape[1], kGemvGrain, [&](int64_t begin, int64_t end) {
      throwIfCancelled();
      switch (values.dtype) {
        case DType::F16: bsrGemv512<DType::F16>(rows, x.as<float>(), begin, end, y.as<float>(), biasData, accumulate); break;
        case DType::BF16: bsrGemv512<DType::BF16>(rows, x.as<float>(), begin, end, y.as<float>(), biasData, accumulate); break;
        default: bsrGemv512<DType::F32>(rows, x.as<float>(), begin, end, y.as<float>(), biasData, accumulate); break;
      }
    });
    return;
  }
#endif
  linearByTiles(rows, x, bias, accumulate, y);
}

void bsrInt4Linear(const TensorView& x, const TensorView& rowPtr, const TensorView& blockCols, const TensorView& packed,
                   const TensorView& blockScales, int64_t blockSize, const TensorView& bias, TensorView& y) {
  const int64_t k = x.shape[1];
  BsrRows rows{rowPtr.as<int32_t>(), blockCols.as<int32_t>(), blockSize, blockColumns(k, blockSize), k};
  rows.packed = packed.as<uint8_t>();
  rows.blockScales = blockScales.data;
  rows.scaleType = blockScales.dtype;
  rows.op = "bsrInt4Linear";
#if SPARQ_X86
  if (fusedBatchOne(x)) {
    std::vector<float> xp(static_cast<size_t>(k));
    permuteEvenOdd(x.as<float>(), k, blockSize, xp.data());
    const float* biasData = bias.numel() > 0 ? bias.as<float>() : nullptr;
    parallelFor(y.shape[1], kGemvGrain, [&](int64_t begin, int64_t end) {
      throwIfCancelled();
      bsrInt4Gemv512(rows, x.as<float>(), xp.data(), begin, end, y.as<float>(), biasData);
    });
    return;
  }
#endif
  linearByTiles(rows, x, bias, false, y);
}

// ---------------------------------------------------------------- converters

namespace {

template <typename Bits>
void pack24Rows(const TensorView& w, TensorView& values, TensorView& meta) {
  const int64_t rowsCount = w.shape[0], k = w.shape[1], kept = values.shape[1], metaWords = meta.shape[1];
  const Bits* src = static_cast<const Bits*>(w.data);
  Bits* dst = static_cast<Bits*>(values.data);
  int32_t* metaOut = meta.as<int32_t>();
  parallelFor(rowsCount, std::max<int64_t>(1, 65536 / std::max<int64_t>(k, 1)), [&](int64_t begin, int64_t end) {
    throwIfCancelled();
    for (int64_t n = begin; n < end; ++n) {
      const Bits* row = src + n * k;
      Bits* out = dst + n * kept;
      uint32_t* words = reinterpret_cast<uint32_t*>(metaOut + n * metaWords);
      std::fill(words, words + metaWords, 0u);
      for (int64_t g = 0; g < kept / 2; ++g) {
        int positions[2] = {-1, -1};
        int found = 0;
        for (int p = 0; p < 4 && 4 * g + p < k; ++p) {
          if (row[4 * g + p] == 0) continue;
          if (found == 2) {
            fail(ErrorCode::InvalidArgument, "pack24: row " + std::to_string(n) + ", inputs " + std::to_string(4 * g) + ".." +
                                                 std::to_string(std::min(k, 4 * g + 4) - 1) +
                                                 " hold more than 2 nonzero values: the weight is not 2:4 sparse");
          }
          positions[found++] = p;
        }
        // Fill unused slots with the lowest free positions, keeping the two increasing.
        for (int p = 0; found < 2; ++p) {
          if (found == 1 && p == positions[0]) continue;
          positions[found++] = p;
        }
        if (positions[0] > positions[1]) std::swap(positions[0], positions[1]);
        for (int s = 0; s < 2; ++s) {
          const int64_t j = 2 * g + s, c = 4 * g + positions[s];
          out[j] = c < k ? row[c] : Bits(0);
          words[j >> 4] |= static_cast<uint32_t>(positions[s]) << (2 * (j & 15));
        }
      }
    }
  });
}

template <typename Bits>
void unpack24Rows(const TensorView& values, const TensorView& meta, TensorView& w) {
  const int64_t rowsCount = w.shape[0], k = w.shape[1], kept = values.shape[1], metaWords = meta.shape[1];
  const Bits* src = static_cast<const Bits*>(values.data);
  Bits* dst = static_cast<Bits*>(w.data);
  parallelFor(rowsCount, std::max<int64_t>(1, 65536 / std::max<int64_t>(k, 1)), [&](int64_t begin, int64_t end) {
    throwIfCancelled();
    for (int64_t n = begin; n < end; ++n) {
      Bits* row = dst + n * k;
      std::fill(row, row + k, Bits(0));
      const int32_t* metaRow = meta.as<int32_t>() + n * metaWords;
      for (int64_t j = 0; j < kept; ++j) {
        const int64_t c = keptColumn(metaRow, j, n, "unpack24");
        const Bits v = src[n * kept + j];
        if (c < k) {
          row[c] = v;
        } else if (v != 0) {
          corrupt("unpack24", "row " + std::to_string(n) + " keeps a nonzero value past the last input");
        }
      }
    }
  });
}

template <typename Bits>
bool blockIsZero(const Bits* row, int64_t c0, int64_t bs, int64_t k) {
  for (int64_t i = c0; i < std::min(k, c0 + bs); ++i)
    if (row[i] != 0) return false;
  return true;
}

template <typename Bits>
void countBlocks(const TensorView& w, int64_t bs, TensorView& rowPtr) {
  const int64_t rowsCount = w.shape[0], k = w.shape[1], blocks = blockColumns(k, bs);
  const Bits* src = static_cast<const Bits*>(w.data);
  int32_t* ptr = rowPtr.as<int32_t>();
  ptr[0] = 0;
  parallelFor(rowsCount, std::max<int64_t>(1, 65536 / std::max<int64_t>(k, 1)), [&](int64_t begin, int64_t end) {
    throwIfCancelled();
    for (int64_t n = begin; n < end; ++n) {
      int32_t count = 0;
      for (int64_t b = 0; b < blocks; ++b) count += blockIsZero(src + n * k, b * bs, bs, k) ? 0 : 1;
      ptr[n + 1] = count;
    }
  });
  int64_t total = 0;
  for (int64_t n = 0; n < rowsCount; ++n) {
    total += ptr[n + 1];
    SPARQ_CHECK(total <= INT32_MAX, ErrorCode::InvalidArgument, "countBsrBlocks: more than 2^31 blocks");
    ptr[n + 1] = static_cast<int32_t>(total);
  }
}

template <typename Bits>
void packBlocks(const TensorView& w, int64_t bs, const TensorView& rowPtr, TensorView& blockCols, TensorView& values) {
  const int64_t rowsCount = w.shape[0], k = w.shape[1], blocks = blockColumns(k, bs);
  const Bits* src = static_cast<const Bits*>(w.data);
  const int32_t* ptr = rowPtr.as<int32_t>();
  parallelFor(rowsCount, std::max<int64_t>(1, 65536 / std::max<int64_t>(k, 1)), [&](int64_t begin, int64_t end) {
    throwIfCancelled();
    for (int64_t n = begin; n < end; ++n) {
      int64_t next = ptr[n];
      for (int64_t b = 0; b < blocks; ++b) {
        if (blockIsZero(src + n * k, b * bs, bs, k)) continue;
        SPARQ_CHECK(next < ptr[n + 1], ErrorCode::InvalidArgument,
                    "packBsr: row " + std::to_string(n) + " has more nonzero blocks than rowPtr allows (was it counted for this weight?)");
        blockCols.as<int32_t>()[next] = static_cast<int32_t>(b);
        Bits* out = static_cast<Bits*>(values.data) + next * bs;
        for (int64_t i = 0; i < bs; ++i) out[i] = b * bs + i < k ? src[n * k + b * bs + i] : Bits(0);
        ++next;
      }
      SPARQ_CHECK(next == ptr[n + 1], ErrorCode::InvalidArgument,
                  "packBsr: row " + std::to_string(n) + " has fewer nonzero blocks than rowPtr says");
    }
  });
}

template <typename Bits>
void unpackBlocks(const TensorView& rowPtr, const TensorView& blockCols, const TensorView& values, int64_t bs, TensorView& w) {
  const int64_t rowsCount = w.shape[0], k = w.shape[1], blocks = blockColumns(k, bs);
  const int32_t* ptr = rowPtr.as<int32_t>();
  const Bits* src = static_cast<const Bits*>(values.data);
  parallelFor(rowsCount, std::max<int64_t>(1, 65536 / std::max<int64_t>(k, 1)), [&](int64_t begin, int64_t end) {
    throwIfCancelled();
    for (int64_t n = begin; n < end; ++n) {
      Bits* row = static_cast<Bits*>(w.data) + n * k;
      std::fill(row, row + k, Bits(0));
      for (int64_t b = ptr[n]; b < ptr[n + 1]; ++b) {
        const int64_t c0 = blockColumn(blockCols.as<int32_t>(), b, ptr[n], blocks, n, "unpackBsr") * bs;
        for (int64_t i = 0; i < bs; ++i) {
          if (c0 + i < k) {
            row[c0 + i] = src[b * bs + i];
          } else if (src[b * bs + i] != 0) {
            corrupt("unpackBsr", "row " + std::to_string(n) + ": block " + std::to_string(b) + " holds a nonzero value past the last input");
          }
        }
      }
    }
  });
}

// Runs fn<Bits>() for the element size of dtype: values are compared and moved as raw bits.
template <template <typename> class Fn, typename... Args>
void byElementSize(DType dtype, Args&&... args) {
  switch (dtypeSize(dtype)) {
    case 1: Fn<uint8_t>::run(std::forward<Args>(args)...); break;
    case 2: Fn<uint16_t>::run(std::forward<Args>(args)...); break;
    default: Fn<uint32_t>::run(std::forward<Args>(args)...); break;
  }
}

template <typename B>
struct Pack24Fn {
  static void run(const TensorView& w, TensorView& values, TensorView& meta) { pack24Rows<B>(w, values, meta); }
};
template <typename B>
struct Unpack24Fn {
  static void run(const TensorView& values, const TensorView& meta, TensorView& w) { unpack24Rows<B>(values, meta, w); }
};
template <typename B>
struct CountBlocksFn {
  static void run(const TensorView& w, int64_t bs, TensorView& rowPtr) { countBlocks<B>(w, bs, rowPtr); }
};
template <typename B>
struct PackBlocksFn {
  static void run(const TensorView& w, int64_t bs, const TensorView& rowPtr, TensorView& blockCols, TensorView& values) {
    packBlocks<B>(w, bs, rowPtr, blockCols, values);
  }
};
template <typename B>
struct UnpackBlocksFn {
  static void run(const TensorView& rowPtr, const TensorView& blockCols, const TensorView& values, int64_t bs, TensorView& w) {
    unpackBlocks<B>(rowPtr, blockCols, values, bs, w);
  }
};

}  // namespace

void pack24(const TensorView& w, TensorView& values, TensorView& meta) { byElementSize<Pack24Fn>(w.dtype, w, values, meta); }
void unpack24(const TensorView& values, const TensorView& meta, TensorView& w) {
  byElementSize<Unpack24Fn>(w.dtype, values, meta, w);
}
void countBsrBlocks(const TensorView& w, int64_t blockSize, TensorView& rowPtr) {
  byElementSize<CountBlocksFn>(w.dtype, w, blockSize, rowPtr);
}
void packBsr(const TensorView& w, int64_t blockSize, const TensorView& rowPtr, TensorView& blockCols, TensorView& values) {
  byElementSize<PackBlocksFn>(w.dtype, w, blockSize, rowPtr, blockCols, values);
}
void unpackBsr(const TensorView& rowPtr, const TensorView& blockCols, const TensorView& values, int64_t blockSize,
               TensorView& w) {
  byElementSize<UnpackBlocksFn>(w.dtype, rowPtr, blockCols, values, blockSize, w);
}

}  // namespace sparq::cpu

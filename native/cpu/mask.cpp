// Mask selection. References (Isa::Scalar): top-k sorts each row; N:M ranks each group by pairwise
// comparison of order keys. Fast paths: top-k is a three-level radix select on the order-preserving integer key of
// each float (11 + 11 + 10 bits), so a row costs a few linear passes instead of a sort; N:M ranks 16 (or
// 8) entries per instruction by permuting each group's members across lanes.
// All masks are u8, 1 = selected. Ties go to the lower column index. NaN scores are an error: a NaN
// has no rank, so no mask would be right.
#include "mask.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "core/pool.h"
#include "isa.h"
#include "simd.h"

namespace sparq::cpu {

namespace {

// Rows per parallel task: enough that a task touches at least ~16K scores.
int64_t rowGrain(int64_t cols) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)); }

[[noreturn]] void failNaN(const char* op, int64_t row, int64_t col) {
  fail(ErrorCode::InvalidArgument, std::string(op) + ": scores contain NaN at row " + std::to_string(row) +
                                       ", column " + std::to_string(col));
}

bool isNaNBits(uint32_t u) { return (u & 0x7FFFFFFFu) > 0x7F800000u; }

// Monotone map from float to uint32: a < b as floats (with -0 < +0) iff key(a) < key(b).
SPARQ_INLINE uint32_t orderKey(uint32_t bits) {
  return bits ^ (static_cast<uint32_t>(static_cast<int32_t>(bits) >> 31) | 0x80000000u);
}

// ---- top-k: reference ------------------------------------------------------------------------------

void topkRowReference(const float* scores, int64_t cols, int64_t k, bool largest, uint8_t* mask, int64_t row) {
  std::vector<int64_t> order(cols);
  std::iota(order.begin(), order.end(), 0);
  for (int64_t c = 0; c < cols; ++c) {
    if (std::isnan(scores[c])) failNaN("topkMask", row, c);
  }
  // Ranked by the order key (so -0 sorts below +0, as in the fast path); the stable sort keeps the
  // lower index first among equal keys.
  auto key = [&](int64_t c) {
    uint32_t bits;
    memcpy(&bits, &scores[c], 4);
    const uint32_t k32 = orderKey(bits);
    return largest ? k32 : ~k32;
  };
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return key(a) > key(b); });
  memset(mask, 0, cols);
  for (int64_t i = 0; i < k; ++i) mask[order[i]] = 1;
}

// ---- top-k: radix select ---------------------------------------------------------------------------

// Picks, from a histogram, the bucket holding the need-th largest key. `need` becomes the rank within
// that bucket and `inBucket` its population.
uint32_t pickBucket(const uint32_t* histogram, uint32_t buckets, int64_t& need, int64_t& inBucket) {
  int64_t above = 0;
  int64_t b = static_cast<int64_t>(buckets) - 1;
  // Whole blocks of 16 buckets at a time while the k-th key lies below them.
  for (; b >= 15; b -= 16) {
    uint32_t block = 0;
    for (int i = 0; i < 16; ++i) block += histogram[b - 15 + i];
    if (above + block >= need) break;
    above += block;
  }
  for (; b >= 0; --b) {
    if (above + histogram[b] >= need) {
      need -= above;
      inBucket = histogram[b];
      return static_cast<uint32_t>(b);
    }
    above += histogram[b];
  }
  fail(ErrorCode::Internal, "topkMask: radix select ran past the end");
}

// Keys whose top 11 bits equal `bucket`, packed into `out` (which has room for n + 16); returns the count.
int64_t compactBucketGeneric(const uint32_t* keys, int64_t n, uint32_t bucket, uint32_t* out) {
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    out[count] = keys[i];
    count += (keys[i] >> 21) == bucket;  // branch-free: the bucket may hold a sizable share of a row
  }
  return count;
}

#if SPARQ_X86
SPARQ_TARGET_AVX512 int64_t compactBucketAvx512(const uint32_t* keys, int64_t n, uint32_t bucket, uint32_t* out) {
  const __m512i target = _mm512_set1_epi32(static_cast<int>(bucket));
  int64_t count = 0, i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i k = _mm512_loadu_si512(keys + i);
    const __mmask16 hit = _mm512_cmpeq_epi32_mask(_mm512_srli_epi32(k, 21), target);
    // Compress in a register and store whole: a compressing store to memory is slow on some cores.
    _mm512_storeu_si512(out + count, _mm512_maskz_compress_epi32(hit, k));
    count += __builtin_popcount(hit);
  }
  return count + compactBucketGeneric(keys + i, n - i, bucket, out + count);
}
#endif

using CompactFn = int64_t (*)(const uint32_t*, int64_t, uint32_t, uint32_t*);

// The body of the fast path, instantiated once per instruction set so the key and write loops are
// vectorized for each. Three levels of 11, 11 and 10 bits narrow the k-th largest key; the first level
// counts the whole row (over four tables, so runs of one bucket do not serialize on a counter), the
// others only the keys left in the chosen bucket.
SPARQ_INLINE void topkRowRadix(const float* scores, int64_t cols, int64_t k, bool largest, uint8_t* mask, int64_t row,
                               uint32_t* keys, uint32_t* candidates, CompactFn compact) {
  const uint32_t* bits = reinterpret_cast<const uint32_t*>(scores);
  const uint32_t flip = largest ? 0u : 0xFFFFFFFFu;
  uint32_t anyNaN = 0;
  for (int64_t c = 0; c < cols; ++c) {
    const uint32_t b = bits[c];
    anyNaN |= static_cast<uint32_t>((b & 0x7FFFFFFFu) > 0x7F800000u);
    keys[c] = orderKey(b) ^ flip;
  }
  if (anyNaN) {
    for (int64_t c = 0; c < cols; ++c) {
      if (isNaNBits(bits[c])) failNaN("topkMask", row, c);
    }
  }
  if (k == 0) {
    memset(mask, 0, cols);
    return;
  }
  // Level 1: the top 11 bits over the whole row, counted in four interleaved tables: scores of a row
  // crowd into a few buckets, and consecutive increments of one counter would serialize on memory.
  uint32_t tables[4][2048];
  memset(tables, 0, sizeof tables);
  int64_t c = 0;
  for (; c + 4 <= cols; c += 4) {
    tables[0][keys[c] >> 21]++;
    tables[1][keys[c + 1] >> 21]++;
    tables[2][keys[c + 2] >> 21]++;
    tables[3][keys[c + 3] >> 21]++;
  }
  for (; c < cols; ++c) tables[0][keys[c] >> 21]++;
  uint32_t* table = tables[0];
  for (int b = 0; b < 2048; ++b) table[b] += tables[1][b] + tables[2][b] + tables[3][b];
  int64_t need = k, inBucket = 0;
  const uint32_t b1 = pickBucket(table, 2048, need, inBucket);
  uint32_t low = b1 << 21;
  bool exact = need == inBucket;  // the whole bucket is selected: every key >= its lower edge
  if (!exact) {
    // The remaining 21 bits in three 7-bit levels over the bucket's keys only: small tables keep the
    // per-row cost of clearing and scanning them low.
    const int64_t n = compact(keys, cols, b1, candidates);
    for (int shift = 14; shift >= 0 && !exact; shift -= 7) {
      uint32_t* histogram = table;
      memset(histogram, 0, 128 * sizeof(uint32_t));
      const uint32_t prefix = low >> (shift + 7);
      for (int64_t i = 0; i < n; ++i) {
        if ((candidates[i] >> (shift + 7)) == prefix) histogram[(candidates[i] >> shift) & 0x7Fu]++;
      }
      low |= pickBucket(histogram, 128, need, inBucket) << shift;
      exact = need == inBucket;
    }
  }
  if (exact) {
    for (int64_t i = 0; i < cols; ++i) mask[i] = keys[i] >= low;
    return;
  }
  // `low` is now one key value shared by several entries; take the first `need` of them.
  int64_t equalLeft = need;
  for (int64_t i = 0; i < cols; ++i) {
    const uint32_t key = keys[i];
    uint8_t take = key > low;
    if (key == low && equalLeft > 0) {
      take = 1;
      --equalLeft;
    }
    mask[i] = take;
  }
}

// Per-thread scratch: the row's keys and the candidates of the chosen bucket.
uint32_t* rowScratch(int64_t cols) {
  thread_local std::vector<uint32_t> scratch;
  const size_t needed = 2 * static_cast<size_t>(cols) + 16;
  if (scratch.size() < needed) scratch.resize(needed);
  return scratch.data();
}

#if SPARQ_X86
SPARQ_TARGET_AVX2 void topkRowsAvx2(const float* s, int64_t cols, int64_t k, bool largest, uint8_t* m, int64_t r0,
                                    int64_t r1) {
  uint32_t* keys = rowScratch(cols);
  for (int64_t r = r0; r < r1; ++r) {
    topkRowRadix(s + r * cols, cols, k, largest, m + r * cols, r, keys, keys + cols, compactBucketGeneric);
  }
}
SPARQ_TARGET_AVX512 void topkRowsAvx512(const float* s, int64_t cols, int64_t k, bool largest, uint8_t* m, int64_t r0,
                                        int64_t r1) {
  uint32_t* keys = rowScratch(cols);
  for (int64_t r = r0; r < r1; ++r) {
    topkRowRadix(s + r * cols, cols, k, largest, m + r * cols, r, keys, keys + cols, compactBucketAvx512);
  }
}
#endif

// ---- N:M: reference --------------------------------------------------------------------------------

// Ranks by the same order key as top-k (so -0 ranks below +0); equal keys go to the lower index.
void nmRowReference(const float* s, int64_t cols, int n, int m, bool largest, uint8_t* mask, int64_t row) {
  const uint32_t* bits = reinterpret_cast<const uint32_t*>(s);
  const uint32_t flip = largest ? 0u : 0xFFFFFFFFu;
  for (int64_t g = 0; g < cols; g += m) {
    for (int i = 0; i < m; ++i) {
      if (isNaNBits(bits[g + i])) failNaN("nmMask", row, g + i);
      const uint32_t ki = orderKey(bits[g + i]) ^ flip;
      int rank = 0;  // entries of the group that beat entry i
      for (int j = 0; j < m; ++j) {
        const uint32_t kj = orderKey(bits[g + j]) ^ flip;
        if (kj > ki || (kj == ki && j < i)) ++rank;
      }
      mask[g + i] = rank < n;
    }
  }
}

// ---- N:M: vectorized for m dividing the vector width ------------------------------------------------
// Each lane holds a signed order key. For member j of a group, one permute broadcasts it across the
// group; it beats a lane when key_j + [j before the lane] > key_lane (the +1 turns ties into wins for
// the earlier member). Keys of non-NaN floats stay below INT32_MAX, so the +1 cannot overflow.

#if SPARQ_X86
SPARQ_TARGET_AVX512 void nmRowsAvx512(const float* s, int64_t cols, int n, int m, bool largest, uint8_t* mask,
                                      int64_t r0, int64_t r1) {
  __m512i memberIndex[16];
  __m512i tieBias[16];
  for (int j = 0; j < m; ++j) {
    alignas(64) int32_t idx[16], bias[16];
    for (int lane = 0; lane < 16; ++lane) {
      idx[lane] = (lane & ~(m - 1)) + j;
      bias[lane] = (lane & (m - 1)) > j ? 1 : 0;
    }
    memberIndex[j] = _mm512_load_si512(idx);
    tieBias[j] = _mm512_load_si512(bias);
  }
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i keep = _mm512_set1_epi32(n);
  const __m512i flip = _mm512_set1_epi32(largest ? 0 : -1);
  const __m512i magnitude = _mm512_set1_epi32(0x7FFFFFFF);
  const __m512i infinity = _mm512_set1_epi32(0x7F800000);
  const int64_t vectorCols = cols & ~int64_t{15};
  for (int64_t r = r0; r < r1; ++r) {
    const float* row = s + r * cols;
    uint8_t* out = mask + r * cols;
    __mmask16 nan = 0;
    for (int64_t c = 0; c < vectorCols; c += 16) {
      const __m512i bits = _mm512_loadu_si512(row + c);
      nan |= _mm512_cmpgt_epi32_mask(_mm512_and_si512(bits, magnitude), infinity);
      const __m512i key = _mm512_xor_si512(_mm512_xor_si512(bits, _mm512_and_si512(_mm512_srai_epi32(bits, 31), magnitude)), flip);
      __m512i rank = _mm512_setzero_si512();
      for (int j = 0; j < m; ++j) {
        const __m512i member = _mm512_add_epi32(_mm512_permutexvar_epi32(memberIndex[j], key), tieBias[j]);
        rank = _mm512_mask_add_epi32(rank, _mm512_cmpgt_epi32_mask(member, key), rank, one);
      }
      const __mmask16 selected = _mm512_cmplt_epi32_mask(rank, keep);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + c), _mm_maskz_set1_epi8(selected, 1));
    }
    if (nan) nmRowReference(row, vectorCols, n, m, largest, out, r);  // reports the first NaN
    nmRowReference(row + vectorCols, cols - vectorCols, n, m, largest, out + vectorCols, r);
  }
}

SPARQ_TARGET_AVX2 void nmRowsAvx2(const float* s, int64_t cols, int n, int m, bool largest, uint8_t* mask, int64_t r0,
                                  int64_t r1) {
  __m256i memberIndex[8];
  __m256i tieBias[8];
  for (int j = 0; j < m; ++j) {
    alignas(32) int32_t idx[8], bias[8];
    for (int lane = 0; lane < 8; ++lane) {
      idx[lane] = (lane & ~(m - 1)) + j;
      bias[lane] = (lane & (m - 1)) > j ? 1 : 0;
    }
    memberIndex[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(idx));
    tieBias[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(bias));
  }
  const __m256i keep = _mm256_set1_epi32(n);
  const __m256i flip = _mm256_set1_epi32(largest ? 0 : -1);
  const __m256i magnitude = _mm256_set1_epi32(0x7FFFFFFF);
  const __m256i infinity = _mm256_set1_epi32(0x7F800000);
  const int64_t vectorCols = cols & ~int64_t{7};
  for (int64_t r = r0; r < r1; ++r) {
    const float* row = s + r * cols;
    uint8_t* out = mask + r * cols;
    __m256i nan = _mm256_setzero_si256();
    for (int64_t c = 0; c < vectorCols; c += 8) {
      const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + c));
      nan = _mm256_or_si256(nan, _mm256_cmpgt_epi32(_mm256_and_si256(bits, magnitude), infinity));
      const __m256i key = _mm256_xor_si256(_mm256_xor_si256(bits, _mm256_and_si256(_mm256_srai_epi32(bits, 31), magnitude)), flip);
      __m256i rank = _mm256_setzero_si256();
      for (int j = 0; j < m; ++j) {
        const __m256i member = _mm256_add_epi32(_mm256_permutevar8x32_epi32(key, memberIndex[j]), tieBias[j]);
        rank = _mm256_sub_epi32(rank, _mm256_cmpgt_epi32(member, key));  // comparisons are -1 when true
      }
      const int selected = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(keep, rank)));
      const uint64_t bytes = _pdep_u64(static_cast<uint64_t>(selected), 0x0101010101010101ull);
      memcpy(out + c, &bytes, 8);
    }
    if (!_mm256_testz_si256(nan, nan)) nmRowReference(row, vectorCols, n, m, largest, out, r);
    nmRowReference(row + vectorCols, cols - vectorCols, n, m, largest, out + vectorCols, r);
  }
}
#endif

// ---- threshold and apply -------------------------------------------------------------------------------

SPARQ_INLINE bool thresholdBody(const float* s, uint8_t* mask, int64_t n, float t) {
  uint32_t anyNaN = 0;
  for (int64_t i = 0; i < n; ++i) {
    anyNaN |= static_cast<uint32_t>(s[i] != s[i]);
    mask[i] = s[i] > t;
  }
  return anyNaN != 0;
}

bool thresholdGeneric(const float* s, uint8_t* m, int64_t n, float t) { return thresholdBody(s, m, n, t); }
SPARQ_TARGET_AVX2 bool thresholdAvx2(const float* s, uint8_t* m, int64_t n, float t) { return thresholdBody(s, m, n, t); }
SPARQ_TARGET_AVX512 bool thresholdAvx512(const float* s, uint8_t* m, int64_t n, float t) {
  return thresholdBody(s, m, n, t);
}

template <typename T>
SPARQ_INLINE void applyBody(const T* x, const uint8_t* mask, T* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = mask[i] ? x[i] : T(0);
}

template <typename T>
void applyGeneric(const T* x, const uint8_t* m, T* o, int64_t n) {
  applyBody(x, m, o, n);
}
template <typename T>
SPARQ_TARGET_AVX2 void applyAvx2(const T* x, const uint8_t* m, T* o, int64_t n) {
  applyBody(x, m, o, n);
}
template <typename T>
SPARQ_TARGET_AVX512 void applyAvx512(const T* x, const uint8_t* m, T* o, int64_t n) {
  applyBody(x, m, o, n);
}

template <typename T>
void applyTyped(const TensorView& x, const TensorView& mask, TensorView& out) {
  const auto fn = pickKernel(applyGeneric<T>, applyAvx2<T>, applyAvx512<T>);
  const T* xs = x.as<const T>();
  const uint8_t* ms = mask.as<const uint8_t>();
  T* os = out.as<T>();
  parallelFor(x.numel(), 1 << 16, [&](int64_t b, int64_t e) { fn(xs + b, ms + b, os + b, e - b); });
}

}  // namespace

void topkMask(const TensorView& scores, int64_t k, bool largest, TensorView& mask) {
  const int64_t rows = scores.shape[0], cols = scores.shape[1];
  const float* s = scores.as<const float>();
  uint8_t* m = mask.as<uint8_t>();
  const Isa isa = activeIsa();
  parallelFor(rows, rowGrain(cols), [&](int64_t r0, int64_t r1) {
    switch (isa) {
#if SPARQ_X86
      case Isa::Avx512: return topkRowsAvx512(s, cols, k, largest, m, r0, r1);
      case Isa::Avx2: return topkRowsAvx2(s, cols, k, largest, m, r0, r1);
#endif
      default:
        for (int64_t r = r0; r < r1; ++r) topkRowReference(s + r * cols, cols, k, largest, m + r * cols, r);
    }
  });
}

void nmMask(const TensorView& scores, int n, int m, bool largest, TensorView& mask) {
  const int64_t rows = scores.shape[0], cols = scores.shape[1];
  const float* s = scores.as<const float>();
  uint8_t* out = mask.as<uint8_t>();
  const Isa isa = activeIsa();
  const bool powerOfTwo = (m & (m - 1)) == 0;
  parallelFor(rows, rowGrain(cols), [&](int64_t r0, int64_t r1) {
#if SPARQ_X86
    if (isa == Isa::Avx512 && powerOfTwo && m <= 16) return nmRowsAvx512(s, cols, n, m, largest, out, r0, r1);
    if (isa >= Isa::Avx2 && powerOfTwo && m <= 8) return nmRowsAvx2(s, cols, n, m, largest, out, r0, r1);
#endif
    for (int64_t r = r0; r < r1; ++r) nmRowReference(s + r * cols, cols, n, m, largest, out + r * cols, r);
  });
}

void thresholdMask(const TensorView& scores, double threshold, TensorView& mask) {
  const auto fn = pickKernel(thresholdGeneric, thresholdAvx2, thresholdAvx512);
  const float* s = scores.as<const float>();
  uint8_t* m = mask.as<uint8_t>();
  const float t = static_cast<float>(threshold);
  std::atomic<bool> sawNaN{false};
  parallelFor(scores.numel(), 1 << 16, [&](int64_t b, int64_t e) {
    if (fn(s + b, m + b, e - b, t)) sawNaN = true;
  });
  if (sawNaN) {
    const int64_t cols = scores.cols();
    for (int64_t i = 0; i < scores.numel(); ++i) {
      if (std::isnan(s[i])) failNaN("thresholdMask", i / cols, i % cols);
    }
  }
}

void applyMask(const TensorView& x, const TensorView& mask, TensorView& out) {
  switch (dtypeSize(x.dtype)) {
    case 8: return applyTyped<uint64_t>(x, mask, out);
    case 4: return applyTyped<uint32_t>(x, mask, out);
    case 2: return applyTyped<uint16_t>(x, mask, out);
    default: fail(ErrorCode::DTypeMismatch, "applyMask: unsupported dtype");
  }
}

}  // namespace sparq::cpu

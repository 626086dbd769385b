// Mask selection. References (Isa::Scalar): top-k sorts each row; N:M ranks each group by pairwise
// comparison. Fast paths: top-k is a three-level radix select on the order-preserving integer key of
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

// Finds, among keys whose bits above `shift + width` equal `prefix`, the bucket of the next `width` bits
// holding the need-th largest key. Returns the bucket; `need` becomes the rank within that bucket and
// `inBucket` its population.
SPARQ_INLINE uint32_t selectBucket(const uint32_t* keys, int64_t n, int shift, int width, uint32_t prefix, bool filter,
                                   int64_t& need, int64_t& inBucket) {
  uint32_t histogram[2048];
  const uint32_t buckets = 1u << width;
  memset(histogram, 0, buckets * sizeof(uint32_t));
  const uint32_t bucketMask = buckets - 1;
  const int prefixShift = shift + width;
  if (filter) {
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t key = keys[i];
      if ((key >> prefixShift) == prefix) histogram[(key >> shift) & bucketMask]++;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) histogram[(keys[i] >> shift) & bucketMask]++;
  }
  int64_t above = 0;
  for (int64_t b = buckets - 1; b >= 0; --b) {
    if (above + histogram[b] >= need) {
      need -= above;
      inBucket = histogram[b];
      return static_cast<uint32_t>(b);
    }
    above += histogram[b];
  }
  fail(ErrorCode::Internal, "topkMask: radix select ran past the end");
}

// The body of the fast path, instantiated once per instruction set so the key and write loops are
// vectorized for each.
SPARQ_INLINE void topkRowRadix(const float* scores, int64_t cols, int64_t k, bool largest, uint8_t* mask, int64_t row,
                               uint32_t* keys) {
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
  // Narrow the threshold key 11, 11 then 10 bits at a time. Whenever the bucket that holds the k-th key
  // is taken whole, every key >= its lower edge is selected and no tie needs breaking.
  int64_t need = k, inBucket = 0;
  uint32_t low = 0;
  bool exact = false;
  const uint32_t b1 = selectBucket(keys, cols, 21, 11, 0, false, need, inBucket);
  low = b1 << 21;
  if (need == inBucket) {
    exact = true;
  } else {
    const uint32_t b2 = selectBucket(keys, cols, 10, 11, b1, true, need, inBucket);
    low |= b2 << 10;
    if (need == inBucket) {
      exact = true;
    } else {
      const uint32_t b3 = selectBucket(keys, cols, 0, 10, low >> 10, true, need, inBucket);
      low |= b3;
      exact = need == inBucket;
    }
  }
  if (exact) {
    for (int64_t c = 0; c < cols; ++c) mask[c] = keys[c] >= low;
    return;
  }
  // `low` is now one exact key value shared by several entries; take the first `need` of them.
  int64_t equalLeft = need;
  for (int64_t c = 0; c < cols; ++c) {
    const uint32_t key = keys[c];
    uint8_t take = key > low;
    if (key == low && equalLeft > 0) {
      take = 1;
      --equalLeft;
    }
    mask[c] = take;
  }
}

std::vector<uint32_t>& keyScratch(int64_t cols) {
  thread_local std::vector<uint32_t> scratch;
  if (static_cast<int64_t>(scratch.size()) < cols) scratch.resize(cols);
  return scratch;
}

#if SPARQ_X86
SPARQ_TARGET_AVX2 void topkRowsAvx2(const float* s, int64_t cols, int64_t k, bool largest, uint8_t* m, int64_t r0,
                                    int64_t r1) {
  uint32_t* keys = keyScratch(cols).data();
  for (int64_t r = r0; r < r1; ++r) topkRowRadix(s + r * cols, cols, k, largest, m + r * cols, r, keys);
}
SPARQ_TARGET_AVX512 void topkRowsAvx512(const float* s, int64_t cols, int64_t k, bool largest, uint8_t* m, int64_t r0,
                                        int64_t r1) {
  uint32_t* keys = keyScratch(cols).data();
  for (int64_t r = r0; r < r1; ++r) topkRowRadix(s + r * cols, cols, k, largest, m + r * cols, r, keys);
}
#endif

// ---- N:M: reference --------------------------------------------------------------------------------

void nmRowReference(const float* s, int64_t cols, int n, int m, bool largest, uint8_t* mask, int64_t row) {
  for (int64_t g = 0; g < cols; g += m) {
    for (int i = 0; i < m; ++i) {
      const float si = s[g + i];
      if (std::isnan(si)) failNaN("nmMask", row, g + i);
      int rank = 0;  // entries of the group that beat entry i
      for (int j = 0; j < m; ++j) {
        const float sj = s[g + j];
        const bool better = largest ? sj > si : sj < si;
        if (better || (sj == si && j < i)) ++rank;
      }
      mask[g + i] = rank < n;
    }
  }
}

// ---- N:M: vectorized for m dividing the vector width ------------------------------------------------

#if SPARQ_X86
SPARQ_TARGET_AVX512 void nmRowsAvx512(const float* s, int64_t cols, int n, int m, bool largest, uint8_t* mask,
                                      int64_t r0, int64_t r1) {
  // For member j of each group: lane indices that broadcast it across its group, and the lanes whose
  // position in the group is after j (member j wins ties against them).
  __m512i memberIndex[16];
  __mmask16 losesTie[16];
  for (int j = 0; j < m; ++j) {
    alignas(64) int32_t idx[16];
    uint32_t after = 0;
    for (int lane = 0; lane < 16; ++lane) {
      idx[lane] = (lane & ~(m - 1)) + j;
      if ((lane & (m - 1)) > j) after |= 1u << lane;
    }
    memberIndex[j] = _mm512_load_si512(idx);
    losesTie[j] = static_cast<__mmask16>(after);
  }
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i keep = _mm512_set1_epi32(n);
  const __m512 negate = _mm512_set1_ps(largest ? 1.0f : -1.0f);
  const int64_t vectorCols = cols & ~int64_t{15};
  for (int64_t r = r0; r < r1; ++r) {
    const float* row = s + r * cols;
    uint8_t* out = mask + r * cols;
    __mmask16 nan = 0;
    for (int64_t c = 0; c < vectorCols; c += 16) {
      const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(row + c), negate);
      nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
      __m512i rank = _mm512_setzero_si512();
      for (int j = 0; j < m; ++j) {
        const __m512 member = _mm512_permutexvar_ps(memberIndex[j], v);
        const __mmask16 beats = _mm512_cmp_ps_mask(member, v, _CMP_GT_OQ) |
                                (_mm512_cmp_ps_mask(member, v, _CMP_EQ_OQ) & losesTie[j]);
        rank = _mm512_mask_add_epi32(rank, beats, rank, one);
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
  __m256i losesTie[8];
  for (int j = 0; j < m; ++j) {
    alignas(32) int32_t idx[8], after[8];
    for (int lane = 0; lane < 8; ++lane) {
      idx[lane] = (lane & ~(m - 1)) + j;
      after[lane] = (lane & (m - 1)) > j ? -1 : 0;
    }
    memberIndex[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(idx));
    losesTie[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(after));
  }
  const __m256i keep = _mm256_set1_epi32(n);
  const __m256 negate = _mm256_set1_ps(largest ? 1.0f : -1.0f);
  const int64_t vectorCols = cols & ~int64_t{7};
  for (int64_t r = r0; r < r1; ++r) {
    const float* row = s + r * cols;
    uint8_t* out = mask + r * cols;
    int nan = 0;
    for (int64_t c = 0; c < vectorCols; c += 8) {
      const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(row + c), negate);
      nan |= _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      __m256i rank = _mm256_setzero_si256();
      for (int j = 0; j < m; ++j) {
        const __m256 member = _mm256_permutevar8x32_ps(v, memberIndex[j]);
        const __m256i greater = _mm256_castps_si256(_mm256_cmp_ps(member, v, _CMP_GT_OQ));
        const __m256i tie = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(member, v, _CMP_EQ_OQ)), losesTie[j]);
        rank = _mm256_sub_epi32(rank, _mm256_or_si256(greater, tie));  // comparisons are -1 when true
      }
      const int selected = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(keep, rank)));
      const uint64_t bytes = _pdep_u64(static_cast<uint64_t>(selected), 0x0101010101010101ull);
      memcpy(out + c, &bytes, 8);
    }
    if (nan) nmRowReference(row, vectorCols, n, m, largest, out, r);
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
#if SPARQ_X86
SPARQ_TARGET_AVX2 bool thresholdAvx2(const float* s, uint8_t* m, int64_t n, float t) { return thresholdBody(s, m, n, t); }
SPARQ_TARGET_AVX512 bool thresholdAvx512(const float* s, uint8_t* m, int64_t n, float t) {
  return thresholdBody(s, m, n, t);
}
#endif

template <typename T>
SPARQ_INLINE void applyBody(const T* x, const uint8_t* mask, T* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = mask[i] ? x[i] : T(0);
}

template <typename T>
void applyGeneric(const T* x, const uint8_t* m, T* o, int64_t n) {
  applyBody(x, m, o, n);
}
#if SPARQ_X86
template <typename T>
SPARQ_TARGET_AVX2 void applyAvx2(const T* x, const uint8_t* m, T* o, int64_t n) {
  applyBody(x, m, o, n);
}
template <typename T>
SPARQ_TARGET_AVX512 void applyAvx512(const T* x, const uint8_t* m, T* o, int64_t n) {
  applyBody(x, m, o, n);
}
#endif

template <typename T>
void applyTyped(const TensorView& x, const TensorView& mask, TensorView& out) {
  auto fn = applyGeneric<T>;
#if SPARQ_X86
  if (activeIsa() == Isa::Avx512) fn = applyAvx512<T>;
  if (activeIsa() == Isa::Avx2) fn = applyAvx2<T>;
#endif
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
  auto fn = thresholdGeneric;
#if SPARQ_X86
  if (activeIsa() == Isa::Avx512) fn = thresholdAvx512;
  if (activeIsa() == Isa::Avx2) fn = thresholdAvx2;
#endif
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

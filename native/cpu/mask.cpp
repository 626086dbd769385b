// Mask selection. References (Isa::Scalar): top-k sorts each row; N:M ranks each group by pairwise
// comparison of order keys. Fast paths: top-k guesses a window of scores that holds the k-th largest,
// from the thresholds of the rows before or else from an evenly spaced sample of the row; one pass
// counts the scores beyond the window and packs those inside it, an exact select on that small set
// gives the threshold, and a second pass writes the mask. A window that misses falls back to a radix
// select on the order-preserving integer key of each float (11 + 7 + 7 + 7 bits). N:M ranks 16 (or 8)
// entries per instruction by permuting each group's members across lanes.
// All masks are u8, 1 = selected. Ties go to the lower column index. NaN scores are an error: a NaN
// has no rank, so no mask would be right.
#include "mask.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
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
// vectorized for each. Levels of 11, 7, 7 and 7 bits narrow the k-th largest key; the first level
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

// Per-thread scratch of at least `words` words.
uint32_t* rowScratch(size_t words) {
  thread_local std::vector<uint32_t> scratch;
  if (scratch.size() < words) scratch.resize(words);
  return scratch.data();
}

// ---- top-k: window select -----------------------------------------------------------------------------

// Keys of some floats. Non-NaN floats have keys in [key(-inf), key(+inf)], flipped or not.
constexpr uint32_t kLowestKey = 0x007FFFFFu, kHighestKey = 0xFF800000u;
// Rows shorter than this are selected whole: a sample would cost about as much as it saves.
constexpr int64_t kSampleMinCols = 512;
// Masks of this many bytes or more are written around the cache.
constexpr int64_t kStreamMaskBytes = int64_t{32} << 20;
// Selections on this many keys or fewer finish by counting every key's rank at once, without branches.
constexpr int64_t kFinishKeys = 16;

// What one pass over a row found about a window [lowest, highest] of its scores, compared as floats.
// Float order is key order except that -0 equals +0, so keys beyond the window are still above all keys
// inside it: the window is exact for ranks, whatever its bounds.
struct WindowCounts {
  int64_t above = 0;   // scores beyond the window on the selected side: above it for the largest
  int64_t inside = 0;  // scores in the window and NaNs, packed as float bits in column order
};

// The keys of n evenly spaced columns, `stride` apart from stride / 2.
using SampleFn = void (*)(const uint32_t* bits, int64_t n, int64_t stride, bool largest, uint32_t* sample);
// `share`: the part of the row expected inside. Also fetches the row `next` into the cache, for the row
// after this one.
using WindowFn = WindowCounts (*)(const float* scores, int64_t cols, bool largest, float lowest, float highest,
                                  double share, uint32_t* inside, const float* next);
// For a window of one value: counts the scores beyond it and those whose bits are upperBits or lowerBits
// (the two zeros, when the value is zero); true if a score is NaN. Also fetches the row `next`.
using CountValueFn = bool (*)(const float* scores, int64_t cols, bool largest, float value, uint32_t upperBits,
                              uint32_t lowerBits, int64_t& above, int64_t& upper, int64_t& lower, const float* next);
// Turns float bits into keys in place; true if one of them was NaN.
using ToKeysFn = bool (*)(uint32_t* values, int64_t n, bool largest);
// How many of keys[0, n) are above `pivot`, and how many below.
using CountFn = void (*)(const uint32_t* keys, int64_t n, uint32_t pivot, int64_t& greater, int64_t& less);
// Packs the keys above `pivot` (or below it) into `out`, n + 16 words; returns how many.
using KeepFn = int64_t (*)(const uint32_t* keys, int64_t n, uint32_t pivot, bool above, uint32_t* out);
// The need-th largest of at most kFinishKeys keys, and how many keys are above it and equal to it.
using FinishFn = uint32_t (*)(const uint32_t* keys, int64_t n, int64_t need, int64_t& greater, int64_t& equal);
// mask = key >= t: every key equal to t is selected. With `stream`, the mask may bypass the cache.
using WriteAtLeastFn = void (*)(const uint32_t* bits, int64_t cols, bool largest, uint32_t t, bool stream,
                                uint8_t* mask);
// mask = key > t, and 1 for the first `equalToTake` keys equal to t.
using WriteTiesFn = void (*)(const uint32_t* bits, int64_t cols, bool largest, uint32_t t, int64_t equalToTake,
                             bool stream, uint8_t* mask);
using HasNaNFn = bool (*)(const uint32_t* bits, int64_t cols);
using RowFn = void (*)(const float* scores, int64_t cols, int64_t k, bool largest, uint8_t* mask, int64_t row,
                       uint32_t* scratch);

struct WindowKernels {
  SampleFn sample;
  WindowFn window;
  CountValueFn countValue;
  ToKeysFn toKeys;
  CountFn count;
  KeepFn keep;
  FinishFn finish;
  WriteAtLeastFn writeAtLeast;
  WriteTiesFn writeTies;
  HasNaNFn hasNaN;
  RowFn radix;  // for the rows whose windows both miss the k-th key
};

SPARQ_INLINE uint32_t flipOf(bool largest) { return largest ? 0u : 0xFFFFFFFFu; }

// The float bits whose key is `key`: orderKey inverted.
SPARQ_INLINE uint32_t bitsOfKey(uint32_t key) { return key >= 0x80000000u ? key ^ 0x80000000u : ~key; }

float floatOfKey(uint32_t key) {
  const uint32_t bits = bitsOfKey(key);
  float value;
  memcpy(&value, &bits, 4);
  return value;
}

// Bodies and scalar tails of the vector loops, the same for both instruction sets.
SPARQ_INLINE void sampleTail(const uint32_t* bits, int64_t from, int64_t n, int64_t stride, bool largest,
                             uint32_t* sample) {
  for (int64_t i = from; i < n; ++i) sample[i] = orderKey(bits[i * stride + stride / 2]) ^ flipOf(largest);
}

// NaN compares false, so it is never beyond the window and always in it.
template <bool Largest>
SPARQ_INLINE void windowTail(const float* scores, int64_t from, int64_t cols, float lowest, float highest,
                             uint32_t* inside, WindowCounts& w) {
  const uint32_t* bits = reinterpret_cast<const uint32_t*>(scores);
  for (int64_t c = from; c < cols; ++c) {
    const float x = scores[c];
    const bool beyond = Largest ? x > highest : x < lowest;
    const bool reached = Largest ? !(x < lowest) : !(x > highest);
    inside[w.inside] = bits[c];
    w.inside += reached && !beyond;
    w.above += beyond;
  }
}

SPARQ_INLINE bool toKeysBody(uint32_t* values, int64_t n, bool largest) {
  uint32_t nan = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t key = orderKey(values[i]) ^ flipOf(largest);
    nan |= static_cast<uint32_t>(key - kLowestKey > kHighestKey - kLowestKey);
    values[i] = key;
  }
  return nan != 0;
}

SPARQ_INLINE bool hasNaNBody(const uint32_t* bits, int64_t cols) {
  uint32_t nan = 0;
  for (int64_t c = 0; c < cols; ++c) nan |= static_cast<uint32_t>(isNaNBits(bits[c]));
  return nan != 0;
}

SPARQ_INLINE void writeTail(const uint32_t* bits, int64_t from, int64_t cols, bool largest, uint32_t t,
                            int64_t& equalLeft, uint8_t* mask) {
  for (int64_t c = from; c < cols; ++c) {
    const uint32_t key = orderKey(bits[c]) ^ flipOf(largest);
    const bool tie = key == t && equalLeft > 0;
    equalLeft -= tie;
    mask[c] = key > t || tie;
  }
}

// The lowest `left` set bits of `equal`: the ties still to be taken, in column order.
SPARQ_INLINE uint32_t firstTies(uint32_t equal, int64_t left) {
  if (__builtin_popcount(equal) <= left) return equal;
  uint32_t first = 0;
  for (; left > 0; --left) {
    first |= equal & (0u - equal);
    equal &= equal - 1;
  }
  return first;
}

// The need-th largest of keys[0, n) (1 <= need <= n); `greater` and `equal` count the keys above it and
// equal to it. A quickselect that counts first and then packs only the side that holds the answer;
// keys equal to the pivot are set aside, so a run of equal keys ends it in one round. keys and the
// spare (n + 16 words each) are overwritten.
uint32_t selectKey(uint32_t* keys, int64_t n, int64_t need, uint32_t* spare, const WindowKernels& kernels,
                   int64_t& greater, int64_t& equal) {
  int64_t dropped = 0;  // keys above the remaining ones
  for (int round = 0; n > kFinishKeys; ++round) {
    if (round == 64) {
      // Only an adversarial order gets here (every round drops at least the pivot): finish in O(n).
      std::nth_element(keys, keys + need - 1, keys + n, std::greater<uint32_t>());
      const uint32_t t = keys[need - 1];
      greater = dropped + std::count_if(keys, keys + n, [t](uint32_t key) { return key > t; });
      equal = std::count(keys, keys + n, t);
      return t;
    }
    const uint32_t a = keys[n / 4], b = keys[n / 2], c = keys[n - 1 - n / 4];
    const uint32_t pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));
    int64_t nGreater, nLess;
    kernels.count(keys, n, pivot, nGreater, nLess);
    const int64_t nEqual = n - nGreater - nLess;
    if (need > nGreater && need <= nGreater + nEqual) {
      greater = dropped + nGreater;
      equal = nEqual;
      return pivot;
    }
    const bool above = need <= nGreater;
    if (!above) {
      dropped += nGreater + nEqual;
      need -= nGreater + nEqual;
    }
    n = kernels.keep(keys, n, pivot, above, spare);
    std::swap(keys, spare);
  }
  const uint32_t t = kernels.finish(keys, n, need, greater, equal);
  greater += dropped;
  return t;
}

// About cols^(2/3) keys: the sample costs in proportion to its size, the window in proportion to
// cols / sqrt(size).
int64_t sampleSize(int64_t cols) {
  const double root = std::cbrt(static_cast<double>(cols));
  return std::min<int64_t>(cols, std::llround(root * root));
}

// The thresholds of the rows before, in one run of rows. Rows of one matrix tend to share a distribution,
// so a row's threshold is likely near their recent mean, within a few times the usual distance; that
// window, when it holds, is narrower than a sample's and costs no sample. A miss costs one pass and
// pauses the guessing for a few rows.
class ThresholdTrend {
 public:
  bool guesses() const { return seen_ >= 2 && pause_ == 0; }
  // Five mean distances either way: about four standard deviations for normally spread thresholds.
  float lowest() const { return static_cast<float>(mean_ - 5 * distance_); }
  float highest() const { return static_cast<float>(mean_ + 5 * distance_); }
  // The part of its row the last window held.
  double share() const { return share_; }

  void record(float threshold, double share) {
    share_ = share;
    if (!std::isfinite(threshold)) return forget();
    // Means over about the last eight rows.
    if (seen_ == 0) {
      mean_ = threshold;
    } else {
      const double error = std::fabs(threshold - mean_);
      distance_ = seen_ == 1 ? error : distance_ + (error - distance_) / 8;
      mean_ += (threshold - mean_) / 8;
    }
    ++seen_;
    if (pause_ > 0) --pause_;
  }
  void missed() { pause_ = 8; }
  void forget() { seen_ = 0; }

 private:
  double mean_ = 0, distance_ = 0;
  int64_t seen_ = 0, pause_ = 0;
  double share_ = 0;
};

// Selects the row's top k within the window [lowest, highest] if it holds the k-th key, and returns the
// threshold key; false if the window missed it. Fails on NaN either way.
bool topkRowInWindow(const float* scores, int64_t cols, int64_t k, bool largest, uint8_t* mask, int64_t row,
                     float lowest, float highest, double& share, bool stream, uint32_t* scratch, const float* next,
                     const WindowKernels& kernels, uint32_t& threshold) {
  const uint32_t* bits = reinterpret_cast<const uint32_t*>(scores);
  const auto failOnNaN = [&] {
    for (int64_t c = 0; c < cols; ++c) {
      if (isNaNBits(bits[c])) failNaN("topkMask", row, c);
    }
  };
  int64_t greater, equal;
  if (lowest == highest) {
    // One value, so one key, or the two zeros: counting settles the threshold, with nothing to select.
    // Runs of exact zeros, common in pruning scores, come here.
    uint32_t upperBits, lowerBits;
    memcpy(&upperBits, &lowest, 4);
    if ((upperBits & 0x7FFFFFFFu) == 0) upperBits = largest ? 0u : 0x80000000u;  // +0 ranks above -0
    lowerBits = upperBits ^ ((upperBits & 0x7FFFFFFFu) == 0 ? 0x80000000u : 0u);
    int64_t above, upper, lower;
    if (kernels.countValue(scores, cols, largest, lowest, upperBits, lowerBits, above, upper, lower, next)) failOnNaN();
    if (lowerBits == upperBits) lower = 0;
    if (above >= k || above + upper + lower < k) return false;
    const bool first = above + upper >= k;
    threshold = orderKey(first ? upperBits : lowerBits) ^ flipOf(largest);
    greater = first ? above : above + upper;
    equal = first ? upper : lower;
  } else {
    uint32_t* inside = scratch;
    uint32_t* spare = scratch + cols + 16;
    const WindowCounts w = kernels.window(scores, cols, largest, lowest, highest, share, inside, next);
    share = static_cast<double>(w.inside) / cols;
    if (kernels.toKeys(inside, w.inside, largest)) failOnNaN();
    if (w.above >= k || w.above + w.inside < k) return false;
    threshold = selectKey(inside, w.inside, k - w.above, spare, kernels, greater, equal);
    greater += w.above;
  }
  // Ties at the threshold need the column-order fix-up only when some of them stay out.
  if (greater + equal == k) {
    kernels.writeAtLeast(bits, cols, largest, threshold, stream, mask);
  } else {
    kernels.writeTies(bits, cols, largest, threshold, k - greater, stream, mask);
  }
  return true;
}

void topkRowWindowed(const float* scores, int64_t cols, int64_t k, bool largest, uint8_t* mask, int64_t row,
                     bool stream, uint32_t* scratch, const float* next, ThresholdTrend& trend,
                     const WindowKernels& kernels) {
  const uint32_t* bits = reinterpret_cast<const uint32_t*>(scores);
  if (k == 0 || k == cols) {
    if (kernels.hasNaN(bits, cols)) topkRowReference(scores, cols, k, largest, mask, row);  // names the NaN
    memset(mask, k == cols, cols);
    return;
  }
  uint32_t threshold;
  double share = trend.share();
  const auto done = [&] { trend.record(floatOfKey(threshold ^ flipOf(largest)), share); };
  if (trend.guesses()) {
    if (topkRowInWindow(scores, cols, k, largest, mask, row, trend.lowest(), trend.highest(), share, stream, scratch,
                        next, kernels, threshold)) {
      return done();
    }
    trend.missed();
  }
  // Bounds on the k-th key (flipped for the smallest); without a sample, the whole row.
  uint32_t lo = kLowestKey, hi = kHighestKey;
  share = 1;
  if (cols >= kSampleMinCols) {
    // Evenly spaced keys; the k-th largest of the row sits near rank k * n / cols among them. The window
    // spans three standard deviations of that rank either way, so a sample misses about one row in 300.
    const int64_t n = sampleSize(cols), stride = cols / n;
    uint32_t* sample = scratch + 2 * (cols + 16);
    uint32_t* work = sample + n + 16;
    uint32_t* spare = work + n + 16;
    kernels.sample(bits, n, stride, largest, sample);
    const double fraction = static_cast<double>(k) / cols, expected = fraction * n;
    const double margin = 3 * std::sqrt(n * fraction * (1 - fraction)) + 2;
    const int64_t rankHi = static_cast<int64_t>(std::floor(expected - margin));
    const int64_t rankLo = static_cast<int64_t>(std::ceil(expected + margin));
    share = static_cast<double>(std::min(rankLo, n) - std::max<int64_t>(rankHi, 0)) / n;
    int64_t greater, equal;
    if (rankHi >= 1) {
      memcpy(work, sample, n * sizeof(uint32_t));
      hi = std::min(kHighestKey, selectKey(work, n, rankHi, spare, kernels, greater, equal));
    }
    if (rankLo <= n) {
      memcpy(work, sample, n * sizeof(uint32_t));
      lo = std::max(kLowestKey, selectKey(work, n, rankLo, spare, kernels, greater, equal));
    }
  }
  // The bounds as floats in their own order.
  const float lowest = floatOfKey(largest ? lo : ~hi), highest = floatOfKey(largest ? hi : ~lo);
  if (topkRowInWindow(scores, cols, k, largest, mask, row, lowest, highest, share, stream, scratch, next, kernels,
                      threshold)) {
    return done();
  }
  trend.forget();
  kernels.radix(scores, cols, k, largest, mask, row, scratch);
}

#if SPARQ_X86
// ---- AVX-512 kernels of the window select

template <bool Largest>
SPARQ_TARGET_AVX512 SPARQ_INLINE __m512i orderKeysAvx512(__m512i bits) {
  const __m512i toggles = _mm512_or_si512(_mm512_srai_epi32(bits, 31), _mm512_set1_epi32(INT32_MIN));
  return _mm512_xor_si512(_mm512_xor_si512(bits, toggles), _mm512_set1_epi32(Largest ? 0 : -1));
}

SPARQ_TARGET_AVX512 void sampleAvx512(const uint32_t* bits, int64_t n, int64_t stride, bool largest, uint32_t* sample) {
  const __m512i flips = _mm512_set1_epi32(largest ? 0 : -1);
  const __m512i step = _mm512_set1_epi32(static_cast<int>(16 * stride));
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i columns = _mm512_add_epi32(_mm512_mullo_epi32(lanes, _mm512_set1_epi32(static_cast<int>(stride))),
                                     _mm512_set1_epi32(static_cast<int>(stride / 2)));
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i key = _mm512_xor_si512(orderKeysAvx512<true>(_mm512_i32gather_epi32(columns, bits, 4)), flips);
    _mm512_storeu_si512(sample + i, key);
    columns = _mm512_add_epi32(columns, step);
  }
  sampleTail(bits, i, n, stride, largest, sample);
}

// One step of the window pass over the columns in `valid`.
// StoreLanes: lanes stored every step, sized to the share of the row expected inside; the rest only in
// the rare steps with more. A compressing store to memory is slow on some cores, and a 512-bit store costs
// two 256-bit ones, so the step compresses in a register and stores no more than it needs.
template <bool Largest, int StoreLanes>
SPARQ_TARGET_AVX512 SPARQ_INLINE void windowStepAvx512(__m512 x, __m512i b, __mmask16 valid, __m512 lows, __m512 highs,
                                                       int64_t& above, uint32_t* inside, int64_t& count) {
  const __mmask16 beyond = valid & (Largest ? _mm512_cmp_ps_mask(x, highs, _CMP_GT_OQ) : _mm512_cmp_ps_mask(x, lows, _CMP_LT_OQ));
  const __mmask16 reached = Largest ? _mm512_cmp_ps_mask(x, lows, _CMP_NLT_UQ) : _mm512_cmp_ps_mask(x, highs, _CMP_NGT_UQ);
  const __mmask16 in = reached & ~beyond & valid;
  above += __builtin_popcount(beyond);
  const __m512i packed = _mm512_maskz_compress_epi32(in, b);
  const int n = __builtin_popcount(in);
  uint32_t* out = inside + count;
  if (StoreLanes == 16) {
    _mm512_storeu_si512(out, packed);
  } else if (StoreLanes == 8) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm512_castsi512_si256(packed));
    if (n > 8) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8), _mm512_extracti64x4_epi64(packed, 1));
  } else {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_castsi512_si128(packed));
    if (n > 4) _mm512_storeu_si512(out, packed);
  }
  count += n;
}

template <bool Largest, int StoreLanes>
SPARQ_TARGET_AVX512 WindowCounts windowPassAvx512(const float* scores, int64_t cols, float lowest, float highest,
                                                  uint32_t* inside, const float* next) {
  const __m512 lows = _mm512_set1_ps(lowest), highs = _mm512_set1_ps(highest);
  const uint32_t* bits = reinterpret_cast<const uint32_t*>(scores);
  int64_t above = 0, count = 0, c = 0;
  for (; c + 16 <= cols; c += 16) {
    _mm_prefetch(reinterpret_cast<const char*>(next + c), _MM_HINT_T0);
    windowStepAvx512<Largest, StoreLanes>(_mm512_loadu_ps(scores + c), _mm512_loadu_si512(bits + c), 0xFFFF, lows,
                                          highs, above, inside, count);
  }
  if (c < cols) {
    const __mmask16 valid = static_cast<__mmask16>((1u << (cols - c)) - 1);
    windowStepAvx512<Largest, 16>(_mm512_maskz_loadu_ps(valid, scores + c), _mm512_maskz_loadu_epi32(valid, bits + c),
                                  valid, lows, highs, above, inside, count);
  }
  WindowCounts w;
  w.above = above;
  w.inside = count;
  return w;
}

template <bool Largest>
SPARQ_TARGET_AVX512 WindowCounts windowLanesAvx512(const float* scores, int64_t cols, float lowest, float highest,
                                                   double share, uint32_t* inside, const float* next) {
  // Steps with more than the lanes stored cost a mispredicted branch: keep them below about one in 200.
  if (share <= 0.08) return windowPassAvx512<Largest, 4>(scores, cols, lowest, highest, inside, next);
  if (share <= 0.25) return windowPassAvx512<Largest, 8>(scores, cols, lowest, highest, inside, next);
  return windowPassAvx512<Largest, 16>(scores, cols, lowest, highest, inside, next);
}

SPARQ_TARGET_AVX512 WindowCounts windowAvx512(const float* scores, int64_t cols, bool largest, float lowest,
                                              float highest, double share, uint32_t* inside, const float* next) {
  return largest ? windowLanesAvx512<true>(scores, cols, lowest, highest, share, inside, next)
                 : windowLanesAvx512<false>(scores, cols, lowest, highest, share, inside, next);
}

template <bool Largest>
SPARQ_TARGET_AVX512 SPARQ_INLINE void countValueStepAvx512(__m512i b, __mmask16 valid, __m512 values, __m512i uppers,
                                                           __m512i lowers, int64_t& above, int64_t& upper,
                                                           int64_t& lower, __mmask16& nan) {
  const __m512 x = _mm512_castsi512_ps(b);
  const __mmask16 beyond = Largest ? _mm512_mask_cmp_ps_mask(valid, x, values, _CMP_GT_OQ)
                                   : _mm512_mask_cmp_ps_mask(valid, x, values, _CMP_LT_OQ);
  nan |= _mm512_mask_cmp_ps_mask(valid, x, x, _CMP_UNORD_Q);
  above += _mm_popcnt_u32(_cvtmask16_u32(beyond));
  upper += _mm_popcnt_u32(_cvtmask16_u32(_mm512_mask_cmpeq_epi32_mask(valid, b, uppers)));
  lower += _mm_popcnt_u32(_cvtmask16_u32(_mm512_mask_cmpeq_epi32_mask(valid, b, lowers)));
}

template <bool Largest>
SPARQ_TARGET_AVX512 bool countValuePassAvx512(const float* scores, int64_t cols, float value, uint32_t upperBits,
                                              uint32_t lowerBits, int64_t& above, int64_t& upper, int64_t& lower,
                                              const float* next) {
  const __m512 values = _mm512_set1_ps(value);
  const __m512i uppers = _mm512_set1_epi32(static_cast<int>(upperBits)), lowers = _mm512_set1_epi32(static_cast<int>(lowerBits));
  above = upper = lower = 0;
  __mmask16 nan = 0;
  int64_t c = 0;
  for (; c + 16 <= cols; c += 16) {
    _mm_prefetch(reinterpret_cast<const char*>(next + c), _MM_HINT_T0);
    countValueStepAvx512<Largest>(_mm512_loadu_si512(scores + c), 0xFFFF, values, uppers, lowers, above, upper, lower, nan);
  }
  if (c < cols) {
    const __mmask16 valid = static_cast<__mmask16>((1u << (cols - c)) - 1);
    countValueStepAvx512<Largest>(_mm512_maskz_loadu_epi32(valid, scores + c), valid, values, uppers, lowers, above,
                                  upper, lower, nan);
  }
  return nan != 0;
}

SPARQ_TARGET_AVX512 bool countValueAvx512(const float* scores, int64_t cols, bool largest, float value,
                                          uint32_t upperBits, uint32_t lowerBits, int64_t& above, int64_t& upper,
                                          int64_t& lower, const float* next) {
  return largest ? countValuePassAvx512<true>(scores, cols, value, upperBits, lowerBits, above, upper, lower, next)
                 : countValuePassAvx512<false>(scores, cols, value, upperBits, lowerBits, above, upper, lower, next);
}

SPARQ_TARGET_AVX512 bool toKeysAvx512(uint32_t* values, int64_t n, bool largest) { return toKeysBody(values, n, largest); }

SPARQ_TARGET_AVX512 bool hasNaNAvx512(const uint32_t* bits, int64_t cols) { return hasNaNBody(bits, cols); }

SPARQ_TARGET_AVX512 void countAvx512(const uint32_t* keys, int64_t n, uint32_t pivot, int64_t& greater, int64_t& less) {
  const __m512i pivots = _mm512_set1_epi32(static_cast<int>(pivot));
  int64_t above = 0, below = 0, i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i key = _mm512_loadu_si512(keys + i);
    above += _mm_popcnt_u32(_cvtmask16_u32(_mm512_cmpgt_epu32_mask(key, pivots)));
    below += _mm_popcnt_u32(_cvtmask16_u32(_mm512_cmplt_epu32_mask(key, pivots)));
  }
  if (i < n) {
    const __mmask16 valid = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512i key = _mm512_maskz_loadu_epi32(valid, keys + i);
    above += _mm_popcnt_u32(_cvtmask16_u32(_mm512_mask_cmpgt_epu32_mask(valid, key, pivots)));
    below += _mm_popcnt_u32(_cvtmask16_u32(_mm512_mask_cmplt_epu32_mask(valid, key, pivots)));
  }
  greater = above;
  less = below;
}

SPARQ_TARGET_AVX512 int64_t keepAvx512(const uint32_t* keys, int64_t n, uint32_t pivot, bool above, uint32_t* out) {
  const __m512i pivots = _mm512_set1_epi32(static_cast<int>(pivot));
  int64_t count = 0, i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i key = _mm512_loadu_si512(keys + i);
    const __mmask16 kept = above ? _mm512_cmpgt_epu32_mask(key, pivots) : _mm512_cmplt_epu32_mask(key, pivots);
    // Compress in a register and store whole: a compressing store to memory is slow on some cores.
    _mm512_storeu_si512(out + count, _mm512_maskz_compress_epi32(kept, key));
    count += __builtin_popcount(kept);
  }
  if (i < n) {
    const __mmask16 valid = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512i key = _mm512_maskz_loadu_epi32(valid, keys + i);
    const __mmask16 kept = valid & (above ? _mm512_cmpgt_epu32_mask(key, pivots) : _mm512_cmplt_epu32_mask(key, pivots));
    _mm512_storeu_si512(out + count, _mm512_maskz_compress_epi32(kept, key));
    count += __builtin_popcount(kept);
  }
  return count;
}

SPARQ_TARGET_AVX512 uint32_t finishAvx512(const uint32_t* keys, int64_t n, int64_t need, int64_t& greater,
                                          int64_t& equal) {
  // Lane i counts the keys above key i and those at least key i; the answer is the lane whose key
  // has fewer than `need` above it and at least `need` at or above it.
  const __mmask16 valid = static_cast<__mmask16>((1u << n) - 1);
  const __m512i all = _mm512_maskz_loadu_epi32(valid, keys), one = _mm512_set1_epi32(1);
  __m512i above = _mm512_setzero_si512(), atLeast = _mm512_setzero_si512();
  for (int64_t j = 0; j < n; ++j) {
    const __m512i other = _mm512_set1_epi32(static_cast<int>(keys[j]));
    above = _mm512_mask_add_epi32(above, _mm512_cmplt_epu32_mask(all, other), above, one);
    atLeast = _mm512_mask_add_epi32(atLeast, _mm512_cmple_epu32_mask(all, other), atLeast, one);
  }
  const __m512i needs = _mm512_set1_epi32(static_cast<int>(need));
  const __mmask16 answer = _mm512_mask_cmpge_epi32_mask(_mm512_mask_cmplt_epi32_mask(valid, above, needs), atLeast, needs);
  const int lane = __builtin_ctz(_cvtmask16_u32(answer));
  alignas(64) int32_t counts[2][16];
  _mm512_store_si512(counts[0], above);
  _mm512_store_si512(counts[1], atLeast);
  greater = counts[0][lane];
  equal = counts[1][lane] - counts[0][lane];
  return keys[lane];
}

// mask = key >= t, or key > t when Strict, from column `from` on, as one comparison of the raw float bits
// against those of t: from +0 up, floats order as signed integers, below it in reverse as unsigned ones
// (the two halves of the order key); selecting the smallest reverses the comparison. With `stream`,
// whole 64-byte lines of the mask bypass the cache. Returns the columns done; the caller finishes the rest.
template <bool Signed, int Predicate>
SPARQ_TARGET_AVX512 SPARQ_INLINE __mmask16 compareBitsAvx512(const uint32_t* bits, __m512i ts) {
  const __m512i b = _mm512_loadu_si512(bits);
  return Signed ? _mm512_cmp_epi32_mask(b, ts, Predicate) : _mm512_cmp_epu32_mask(b, ts, Predicate);
}

template <bool Signed, int Predicate>
SPARQ_TARGET_AVX512 int64_t writeBitsAvx512(const uint32_t* bits, int64_t from, int64_t cols, uint32_t tBits,
                                            bool stream, uint8_t* mask) {
  const __m512i ts = _mm512_set1_epi32(static_cast<int>(tBits));
  const auto sixteen = [&](int64_t c) SPARQ_TARGET_AVX512 {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(mask + c), _mm_maskz_set1_epi8(compareBitsAvx512<Signed, Predicate>(bits + c, ts), 1));
  };
  int64_t c = from;
  // Up to a 64-byte boundary of the mask (never reached when the mask is not 16-byte aligned).
  for (; c + 16 <= cols && reinterpret_cast<uintptr_t>(mask + c) % 64 != 0; c += 16) sixteen(c);
  for (; c + 64 <= cols; c += 64) {
    const __mmask32 low = _mm512_kunpackw(compareBitsAvx512<Signed, Predicate>(bits + c + 16, ts),
                                          compareBitsAvx512<Signed, Predicate>(bits + c, ts));
    const __mmask32 high = _mm512_kunpackw(compareBitsAvx512<Signed, Predicate>(bits + c + 48, ts),
                                           compareBitsAvx512<Signed, Predicate>(bits + c + 32, ts));
    const __m512i bytes = _mm512_maskz_set1_epi8(_mm512_kunpackd(high, low), 1);
    if (stream) {
      _mm512_stream_si512(reinterpret_cast<__m512i*>(mask + c), bytes);
    } else {
      _mm512_storeu_si512(mask + c, bytes);
    }
  }
  for (; c + 16 <= cols; c += 16) sixteen(c);
  return c;
}

template <bool Strict>
SPARQ_TARGET_AVX512 void writeComparedAvx512(const uint32_t* bits, int64_t from, int64_t cols, bool largest, uint32_t t,
                                             bool stream, uint8_t* mask) {
  constexpr int kAbove = Strict ? _MM_CMPINT_NLE : _MM_CMPINT_NLT, kBelow = Strict ? _MM_CMPINT_LT : _MM_CMPINT_LE;
  const uint32_t tBits = bitsOfKey(t ^ flipOf(largest));
  const bool negative = tBits >> 31;
  int64_t c;
  if (largest) {
    c = negative ? writeBitsAvx512<false, kBelow>(bits, from, cols, tBits, stream, mask)
                 : writeBitsAvx512<true, kAbove>(bits, from, cols, tBits, stream, mask);
  } else {
    c = negative ? writeBitsAvx512<false, kAbove>(bits, from, cols, tBits, stream, mask)
                 : writeBitsAvx512<true, kBelow>(bits, from, cols, tBits, stream, mask);
  }
  for (; c < cols; ++c) {
    const uint32_t key = orderKey(bits[c]) ^ flipOf(largest);
    mask[c] = Strict ? key > t : key >= t;
  }
}

SPARQ_TARGET_AVX512 void writeAtLeastAvx512(const uint32_t* bits, int64_t cols, bool largest, uint32_t t, bool stream,
                                            uint8_t* mask) {
  writeComparedAvx512<false>(bits, 0, cols, largest, t, stream, mask);
}

// Until the last tie taken, 64 columns at a time: key > t, and the ties in column order (their
// lowest `equalLeft` bits). Returns the columns done.
template <bool Signed, int Above>
SPARQ_TARGET_AVX512 int64_t writeFirstTiesAvx512(const uint32_t* bits, int64_t cols, uint32_t tBits, int64_t& equalLeft,
                                                 uint8_t* mask) {
  const __m512i ts = _mm512_set1_epi32(static_cast<int>(tBits));
  int64_t c = 0;
  for (; c + 64 <= cols && equalLeft > 0; c += 64) {
    __mmask16 above[4], equal[4];
    for (int part = 0; part < 4; ++part) {
      const __m512i b = _mm512_loadu_si512(bits + c + 16 * part);
      above[part] = Signed ? _mm512_cmp_epi32_mask(b, ts, Above) : _mm512_cmp_epu32_mask(b, ts, Above);
      equal[part] = _mm512_cmpeq_epi32_mask(b, ts);
    }
    const uint64_t greater = _cvtmask64_u64(_mm512_kunpackd(_mm512_kunpackw(above[3], above[2]), _mm512_kunpackw(above[1], above[0])));
    uint64_t ties = _cvtmask64_u64(_mm512_kunpackd(_mm512_kunpackw(equal[3], equal[2]), _mm512_kunpackw(equal[1], equal[0])));
    const int64_t n = _mm_popcnt_u64(ties);
    if (n > equalLeft) ties = _pdep_u64((uint64_t{1} << equalLeft) - 1, ties);
    equalLeft -= std::min(n, equalLeft);
    _mm512_storeu_si512(mask + c, _mm512_maskz_set1_epi8(_cvtu64_mask64(greater | ties), 1));
  }
  return c;
}

SPARQ_TARGET_AVX512 void writeTiesAvx512(const uint32_t* bits, int64_t cols, bool largest, uint32_t t,
                                         int64_t equalToTake, bool stream, uint8_t* mask) {
  const uint32_t tBits = bitsOfKey(t ^ flipOf(largest));
  const bool negative = tBits >> 31;
  int64_t equalLeft = equalToTake, c;
  if (largest) {
    c = negative ? writeFirstTiesAvx512<false, _MM_CMPINT_LT>(bits, cols, tBits, equalLeft, mask)
                 : writeFirstTiesAvx512<true, _MM_CMPINT_NLE>(bits, cols, tBits, equalLeft, mask);
  } else {
    c = negative ? writeFirstTiesAvx512<false, _MM_CMPINT_NLE>(bits, cols, tBits, equalLeft, mask)
                 : writeFirstTiesAvx512<true, _MM_CMPINT_LT>(bits, cols, tBits, equalLeft, mask);
  }
  if (equalLeft > 0) return writeTail(bits, c, cols, largest, t, equalLeft, mask);
  writeComparedAvx512<true>(bits, c, cols, largest, t, stream, mask);
}

// ---- AVX2 kernels of the window select: keys biased by 2^31, so that signed comparisons order them;
// packing through a table of lane permutations.

template <bool Largest>
SPARQ_TARGET_AVX2 SPARQ_INLINE __m256i biasedKeysAvx2(__m256i bits) {
  const __m256i toggles = _mm256_and_si256(_mm256_srai_epi32(bits, 31), _mm256_set1_epi32(INT32_MAX));
  return _mm256_xor_si256(_mm256_xor_si256(bits, toggles), _mm256_set1_epi32(Largest ? 0 : -1));
}

// Entry m lists, one byte each, the lanes of the set bits of m.
constexpr std::array<uint64_t, 256> packedLanes() {
  std::array<uint64_t, 256> table{};
  for (int m = 0; m < 256; ++m) {
    int n = 0;
    for (int lane = 0; lane < 8; ++lane) {
      if (m >> lane & 1) table[m] |= static_cast<uint64_t>(lane) << (8 * n++);
    }
  }
  return table;
}
constexpr std::array<uint64_t, 256> kPackedLanes = packedLanes();

SPARQ_TARGET_AVX2 SPARQ_INLINE __m256i compressAvx2(__m256i v, int selected) {
  const __m256i lanes = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(kPackedLanes[selected])));
  return _mm256_permutevar8x32_epi32(v, lanes);
}

SPARQ_TARGET_AVX2 SPARQ_INLINE int laneBits(__m256i comparison) {
  return _mm256_movemask_ps(_mm256_castsi256_ps(comparison));
}

SPARQ_TARGET_AVX2 void sampleAvx2(const uint32_t* bits, int64_t n, int64_t stride, bool largest, uint32_t* sample) {
  const __m256i step = _mm256_set1_epi32(static_cast<int>(8 * stride));
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256i columns = _mm256_add_epi32(_mm256_mullo_epi32(lanes, _mm256_set1_epi32(static_cast<int>(stride))),
                                     _mm256_set1_epi32(static_cast<int>(stride / 2)));
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i gathered = _mm256_i32gather_epi32(reinterpret_cast<const int*>(bits), columns, 4);
    // Biased keys back to plain ones.
    const __m256i key = _mm256_xor_si256(largest ? biasedKeysAvx2<true>(gathered) : biasedKeysAvx2<false>(gathered),
                                         _mm256_set1_epi32(INT32_MIN));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(sample + i), key);
    columns = _mm256_add_epi32(columns, step);
  }
  sampleTail(bits, i, n, stride, largest, sample);
}

template <bool Largest>
SPARQ_TARGET_AVX2 SPARQ_INLINE __m256i loadKeysAvx2(const uint32_t* bits) {
  return biasedKeysAvx2<Largest>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bits)));
}

template <bool Largest>
SPARQ_TARGET_AVX2 WindowCounts windowPassAvx2(const float* scores, int64_t cols, float lowest, float highest,
                                              uint32_t* inside, const float* next) {
  const __m256 lows = _mm256_set1_ps(lowest), highs = _mm256_set1_ps(highest);
  __m256i above = _mm256_setzero_si256();
  int64_t count = 0, c = 0;
  for (; c + 8 <= cols; c += 8) {
    if (c % 16 == 0) _mm_prefetch(reinterpret_cast<const char*>(next + c), _MM_HINT_T0);
    const __m256 x = _mm256_loadu_ps(scores + c);
    const __m256 beyond = Largest ? _mm256_cmp_ps(x, highs, _CMP_GT_OQ) : _mm256_cmp_ps(x, lows, _CMP_LT_OQ);
    const __m256 reached = Largest ? _mm256_cmp_ps(x, lows, _CMP_NLT_UQ) : _mm256_cmp_ps(x, highs, _CMP_NGT_UQ);
    const int in = _mm256_movemask_ps(_mm256_andnot_ps(beyond, reached));
    above = _mm256_sub_epi32(above, _mm256_castps_si256(beyond));  // comparisons are -1 when true
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(inside + count), compressAvx2(_mm256_castps_si256(x), in));
    count += __builtin_popcount(in);
  }
  alignas(32) int32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), above);
  WindowCounts w;
  for (const int32_t lane : lanes) w.above += lane;
  w.inside = count;
  windowTail<Largest>(scores, c, cols, lowest, highest, inside, w);
  return w;
}

SPARQ_TARGET_AVX2 WindowCounts windowAvx2(const float* scores, int64_t cols, bool largest, float lowest, float highest,
                                          double /*share*/, uint32_t* inside, const float* next) {
  return largest ? windowPassAvx2<true>(scores, cols, lowest, highest, inside, next)
                 : windowPassAvx2<false>(scores, cols, lowest, highest, inside, next);
}

template <bool Largest>
SPARQ_TARGET_AVX2 bool countValuePassAvx2(const float* scores, int64_t cols, float value, uint32_t upperBits,
                                          uint32_t lowerBits, int64_t& above, int64_t& upper, int64_t& lower,
                                          const float* next) {
  const __m256 values = _mm256_set1_ps(value);
  const __m256i uppers = _mm256_set1_epi32(static_cast<int>(upperBits)), lowers = _mm256_set1_epi32(static_cast<int>(lowerBits));
  const uint32_t* bits = reinterpret_cast<const uint32_t*>(scores);
  above = upper = lower = 0;
  int nan = 0;
  int64_t c = 0;
  for (; c + 8 <= cols; c += 8) {
    if (c % 16 == 0) _mm_prefetch(reinterpret_cast<const char*>(next + c), _MM_HINT_T0);
    const __m256 x = _mm256_loadu_ps(scores + c);
    const __m256i b = _mm256_castps_si256(x);
    above += __builtin_popcount(_mm256_movemask_ps(Largest ? _mm256_cmp_ps(x, values, _CMP_GT_OQ) : _mm256_cmp_ps(x, values, _CMP_LT_OQ)));
    nan |= _mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    upper += __builtin_popcount(laneBits(_mm256_cmpeq_epi32(b, uppers)));
    lower += __builtin_popcount(laneBits(_mm256_cmpeq_epi32(b, lowers)));
  }
  for (; c < cols; ++c) {
    above += Largest ? scores[c] > value : scores[c] < value;
    nan |= isNaNBits(bits[c]);
    upper += bits[c] == upperBits;
    lower += bits[c] == lowerBits;
  }
  return nan != 0;
}

SPARQ_TARGET_AVX2 bool countValueAvx2(const float* scores, int64_t cols, bool largest, float value, uint32_t upperBits,
                                      uint32_t lowerBits, int64_t& above, int64_t& upper, int64_t& lower,
                                      const float* next) {
  return largest ? countValuePassAvx2<true>(scores, cols, value, upperBits, lowerBits, above, upper, lower, next)
                 : countValuePassAvx2<false>(scores, cols, value, upperBits, lowerBits, above, upper, lower, next);
}

SPARQ_TARGET_AVX2 bool toKeysAvx2(uint32_t* values, int64_t n, bool largest) { return toKeysBody(values, n, largest); }

SPARQ_TARGET_AVX2 uint32_t finishAvx2(const uint32_t* keys, int64_t n, int64_t need, int64_t& greater, int64_t& equal) {
  // As finishAvx512, in two halves of eight lanes, on keys biased so that signed comparisons order them.
  alignas(32) int32_t biased[16] = {};
  for (int64_t i = 0; i < n; ++i) biased[i] = static_cast<int32_t>(keys[i] ^ 0x80000000u);
  const __m256i low = _mm256_load_si256(reinterpret_cast<const __m256i*>(biased));
  const __m256i high = _mm256_load_si256(reinterpret_cast<const __m256i*>(biased + 8));
  __m256i aboveLow = _mm256_setzero_si256(), aboveHigh = aboveLow, belowLow = aboveLow, belowHigh = aboveLow;
  for (int64_t j = 0; j < n; ++j) {
    const __m256i other = _mm256_set1_epi32(biased[j]);
    aboveLow = _mm256_sub_epi32(aboveLow, _mm256_cmpgt_epi32(other, low));  // comparisons are -1 when true
    aboveHigh = _mm256_sub_epi32(aboveHigh, _mm256_cmpgt_epi32(other, high));
    belowLow = _mm256_sub_epi32(belowLow, _mm256_cmpgt_epi32(low, other));
    belowHigh = _mm256_sub_epi32(belowHigh, _mm256_cmpgt_epi32(high, other));
  }
  alignas(32) int32_t counts[4][8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(counts[0]), aboveLow);
  _mm256_store_si256(reinterpret_cast<__m256i*>(counts[1]), aboveHigh);
  _mm256_store_si256(reinterpret_cast<__m256i*>(counts[2]), belowLow);
  _mm256_store_si256(reinterpret_cast<__m256i*>(counts[3]), belowHigh);
  for (int64_t i = 0;; ++i) {
    const int64_t above = counts[i / 8][i % 8], atLeast = n - counts[2 + i / 8][i % 8];
    if (above < need && need <= atLeast) {
      greater = above;
      equal = atLeast - above;
      return keys[i];
    }
  }
}

SPARQ_TARGET_AVX2 void countAvx2(const uint32_t* keys, int64_t n, uint32_t pivot, int64_t& greater, int64_t& less) {
  const __m256i bias = _mm256_set1_epi32(INT32_MIN), pivots = _mm256_set1_epi32(static_cast<int>(pivot ^ 0x80000000u));
  __m256i above = _mm256_setzero_si256(), below = _mm256_setzero_si256();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i biased = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + i)), bias);
    above = _mm256_sub_epi32(above, _mm256_cmpgt_epi32(biased, pivots));  // comparisons are -1 when true
    below = _mm256_sub_epi32(below, _mm256_cmpgt_epi32(pivots, biased));
  }
  alignas(32) int32_t lanes[2][8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes[0]), above);
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes[1]), below);
  greater = less = 0;
  for (int lane = 0; lane < 8; ++lane) {
    greater += lanes[0][lane];
    less += lanes[1][lane];
  }
  for (; i < n; ++i) {
    greater += keys[i] > pivot;
    less += keys[i] < pivot;
  }
}

SPARQ_TARGET_AVX2 int64_t keepAvx2(const uint32_t* keys, int64_t n, uint32_t pivot, bool above, uint32_t* out) {
  const __m256i bias = _mm256_set1_epi32(INT32_MIN), pivots = _mm256_set1_epi32(static_cast<int>(pivot ^ 0x80000000u));
  int64_t count = 0, i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i key = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + i));
    const __m256i biased = _mm256_xor_si256(key, bias);
    const int kept = laneBits(above ? _mm256_cmpgt_epi32(biased, pivots) : _mm256_cmpgt_epi32(pivots, biased));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + count), compressAvx2(key, kept));
    count += __builtin_popcount(kept);
  }
  for (; i < n; ++i) {
    out[count] = keys[i];
    count += above ? keys[i] > pivot : keys[i] < pivot;
  }
  return count;
}

SPARQ_TARGET_AVX2 bool hasNaNAvx2(const uint32_t* bits, int64_t cols) { return hasNaNBody(bits, cols); }

// Both writes, 32 columns at a time: four comparisons narrowed to bytes. With equalToTake < 0, every key
// equal to t is taken.
template <bool Largest>
SPARQ_TARGET_AVX2 void writeKeysAvx2(const uint32_t* bits, int64_t cols, uint32_t t, int64_t equalToTake, uint8_t* mask) {
  const __m256i ts = _mm256_set1_epi32(static_cast<int>(t ^ 0x80000000u)), one = _mm256_set1_epi8(1);
  int64_t equalLeft = equalToTake, c = 0;
  if (equalToTake < 0) {
    // key >= t is key > t - 1: t is never the lowest key.
    const __m256i below = _mm256_sub_epi32(ts, _mm256_set1_epi32(1));
    const __m256i columnOrder = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (; c + 32 <= cols; c += 32) {
      const __m256i words0 = _mm256_packs_epi32(_mm256_cmpgt_epi32(loadKeysAvx2<Largest>(bits + c), below), _mm256_cmpgt_epi32(loadKeysAvx2<Largest>(bits + c + 8), below));
      const __m256i words1 = _mm256_packs_epi32(_mm256_cmpgt_epi32(loadKeysAvx2<Largest>(bits + c + 16), below), _mm256_cmpgt_epi32(loadKeysAvx2<Largest>(bits + c + 24), below));
      // The packs interleave the four comparisons by 128-bit lanes; one permutation restores column order.
      const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(words0, words1), columnOrder);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(mask + c), _mm256_and_si256(bytes, one));
    }
    for (; c < cols; ++c) mask[c] = (orderKey(bits[c]) ^ flipOf(Largest)) >= t;
    return;
  }
  for (; c + 8 <= cols; c += 8) {
    const __m256i key = loadKeysAvx2<Largest>(bits + c);
    uint32_t take = static_cast<uint32_t>(laneBits(_mm256_cmpgt_epi32(key, ts)));
    if (equalLeft > 0) {
      const uint32_t ties = firstTies(static_cast<uint32_t>(laneBits(_mm256_cmpeq_epi32(key, ts))), equalLeft);
      equalLeft -= __builtin_popcount(ties);
      take |= ties;
    }
    const uint64_t bytes = _pdep_u64(take, 0x0101010101010101ull);
    memcpy(mask + c, &bytes, 8);
  }
  writeTail(bits, c, cols, Largest, t, equalLeft, mask);
}

SPARQ_TARGET_AVX2 void writeAtLeastAvx2(const uint32_t* bits, int64_t cols, bool largest, uint32_t t, bool /*stream*/,
                                      uint8_t* mask) {
  if (largest) return writeKeysAvx2<true>(bits, cols, t, -1, mask);
  writeKeysAvx2<false>(bits, cols, t, -1, mask);
}

SPARQ_TARGET_AVX2 void writeTiesAvx2(const uint32_t* bits, int64_t cols, bool largest, uint32_t t, int64_t equalToTake,
                                     bool /*stream*/, uint8_t* mask) {
  if (largest) return writeKeysAvx2<true>(bits, cols, t, equalToTake, mask);
  writeKeysAvx2<false>(bits, cols, t, equalToTake, mask);
}

SPARQ_TARGET_AVX2 void topkRowRadixAvx2(const float* s, int64_t cols, int64_t k, bool largest, uint8_t* m, int64_t row,
                                        uint32_t* scratch) {
  topkRowRadix(s, cols, k, largest, m, row, scratch, scratch + cols, compactBucketGeneric);
}
SPARQ_TARGET_AVX512 void topkRowRadixAvx512(const float* s, int64_t cols, int64_t k, bool largest, uint8_t* m,
                                            int64_t row, uint32_t* scratch) {
  topkRowRadix(s, cols, k, largest, m, row, scratch, scratch + cols, compactBucketAvx512);
}

constexpr WindowKernels kWindowAvx2{sampleAvx2,       windowAvx2,    countValueAvx2, toKeysAvx2,
                                    countAvx2,        keepAvx2,      finishAvx2,     writeAtLeastAvx2,
                                    writeTiesAvx2,    hasNaNAvx2,    topkRowRadixAvx2};
constexpr WindowKernels kWindowAvx512{sampleAvx512,       windowAvx512,    countValueAvx512, toKeysAvx512,
                                      countAvx512,        keepAvx512,      finishAvx512,     writeAtLeastAvx512,
                                      writeTiesAvx512,    hasNaNAvx512,    topkRowRadixAvx512};

void topkRowsWindowed(const float* s, int64_t cols, int64_t k, bool largest, uint8_t* m, int64_t r0, int64_t r1,
                      bool stream, const WindowKernels& kernels) {
  // The window's keys and the select's spare (cols + 16 words each), then the sample, its working copy
  // and their spare (n + 16 each); the radix fallback reuses the front as keys and candidates.
  const size_t room = static_cast<size_t>(cols) + 16, sampleRoom = static_cast<size_t>(sampleSize(cols)) + 16;
  uint32_t* scratch = rowScratch(2 * room + 3 * sampleRoom);
  ThresholdTrend trend;
  for (int64_t r = r0; r < r1; ++r) {
    // The window pass fetches the next row while it works; the last row fetches itself again.
    const float* next = s + std::min(r + 1, r1 - 1) * cols;
    topkRowWindowed(s + r * cols, cols, k, largest, m + r * cols, r, stream, scratch, next, trend, kernels);
  }
  if (stream) _mm_sfence();  // streamed lines reach memory before the pool reports the task done
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
  // A mask this large would only evict the scores it is computed from; it goes around the cache.
  const bool stream = rows * cols >= kStreamMaskBytes;
  parallelFor(rows, rowGrain(cols), [&](int64_t r0, int64_t r1) {
    switch (isa) {
#if SPARQ_X86
      case Isa::Avx512: return topkRowsWindowed(s, cols, k, largest, m, r0, r1, stream, kWindowAvx512);
      case Isa::Avx2: return topkRowsWindowed(s, cols, k, largest, m, r0, r1, stream, kWindowAvx2);
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

// Mask selection on the device, matching the CPU reference exactly: floats are ranked by their
// order-preserving integer key (so -0 sorts below +0), ties go to the lower column index, and a NaN
// score is recorded in the caller's flag instead of producing a mask.
//
// Top-k runs one block per row: a radix select over the key in three levels (11, 11 and 10 bits), each a
// shared-memory histogram of the keys still in the running, narrows the k-th key to one value. If every
// key equal to it is selected, the mask is key >= that value; otherwise a block-wide prefix count over
// the tied keys, in column order, takes exactly the first ones still needed.
#include "common.cuh"
#include "kernels.h"

namespace sparq::cuda {

namespace {

constexpr int kTopkThreads = 512;
constexpr int kTopkWarps = kTopkThreads / 32;
constexpr int kBuckets = 2048;  // the widest radix level has 11 bits
constexpr int kBucketsPerThread = kBuckets / kTopkThreads;
constexpr int kLevels = 3;

// The radix levels: bits 21..31, then 10..20, then 0..9 of the key.
__device__ inline int levelShift(int level) { return level == 0 ? 21 : (level == 1 ? 10 : 0); }
__device__ inline int levelWidth(int level) { return level == 2 ? 10 : 11; }

struct TopkShared {
  unsigned int histogram[kBuckets];
  unsigned int warpSums[kTopkWarps];
  uint32_t threshold;  // the bits of the k-th key found so far (the higher levels')
  int64_t need;        // rank of the k-th key among the keys that share those bits
  int64_t inBucket;    // how many keys share them
};

__device__ inline uint32_t rankKey(const float* row, int64_t c, uint32_t flip) {
  return orderKey(__float_as_uint(row[c])) ^ flip;
}

// Exclusive prefix sum of `value` over the block in thread order; `total` receives the block's sum.
// Every thread of the block must call it: it synchronizes, and leaves warpSums free for the next call.
__device__ unsigned blockExclusiveSum(unsigned value, unsigned* warpSums, unsigned& total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  unsigned inclusive = value;
  for (int offset = 1; offset < 32; offset <<= 1) {
    const unsigned below = __shfl_up_sync(0xFFFFFFFFu, inclusive, offset);
    if (lane >= offset) inclusive += below;
  }
  if (lane == 31) warpSums[warp] = inclusive;
  __syncthreads();
  unsigned before = 0;
  total = 0;
  for (int w = 0; w < kTopkWarps; ++w) {
    const unsigned sum = warpSums[w];
    if (w < warp) before += sum;
    total += sum;
  }
  __syncthreads();
  return before + inclusive - value;
}

// Finds the bucket that holds the need-th largest of the counted keys: adds its bits to the threshold,
// makes `need` the rank within it and records its population. Thread t owns buckets counted down from
// the top, so an exclusive prefix sum over threads is the number of keys in higher buckets.
__device__ void pickBucket(TopkShared& shared, int shift) {
  const int top = kBuckets - 1 - static_cast<int>(threadIdx.x) * kBucketsPerThread;
  unsigned counts[kBucketsPerThread];
  unsigned mine = 0;
  for (int j = 0; j < kBucketsPerThread; ++j) {
    counts[j] = shared.histogram[top - j];
    mine += counts[j];
  }
  const int64_t need = shared.need;  // read before the prefix sum's barrier; written only after it
  unsigned total;
  int64_t above = blockExclusiveSum(mine, shared.warpSums, total);
  for (int j = 0; j < kBucketsPerThread; ++j) {
    if (above < need && above + counts[j] >= need) {  // true for exactly one bucket of the block
      shared.need = need - above;
      shared.inBucket = counts[j];
      shared.threshold |= static_cast<uint32_t>(top - j) << shift;
    }
    above += counts[j];
  }
  __syncthreads();
}

__global__ void __launch_bounds__(kTopkThreads)
    topkKernel(const float* scores, int64_t rows, int64_t cols, int64_t k, bool largest, uint8_t* mask,
               int64_t* firstNaN) {
  __shared__ TopkShared shared;
  const uint32_t flip = largest ? 0u : 0xFFFFFFFFu;  // smallest-k is largest-k of the reversed order
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* s = scores + row * cols;
    uint8_t* out = mask + row * cols;

    bool sawNaN = false;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      if (isNaNBits(__float_as_uint(s[c]))) {
        if (!sawNaN) recordFirst(firstNaN, row * cols + c);  // this thread's first; atomicMin keeps the least
        sawNaN = true;
      }
    }
    if (__syncthreads_or(sawNaN)) continue;
    if (k == 0 || k == cols) {
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) out[c] = k != 0;
      continue;
    }

    if (threadIdx.x == 0) {
      shared.threshold = 0;
      shared.need = k;
      shared.inBucket = 0;
    }
    bool exact = false;
    for (int level = 0; level < kLevels; ++level) {
      const int shift = levelShift(level);
      const int prefixShift = shift + levelWidth(level);
      const uint32_t bucketMask = (1u << levelWidth(level)) - 1u;
      for (int b = threadIdx.x; b < kBuckets; b += blockDim.x) shared.histogram[b] = 0;
      __syncthreads();
      const uint32_t threshold = shared.threshold;
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        const uint32_t key = rankKey(s, c, flip);
        // Only keys that agree with the threshold on the higher levels' bits are still in the running.
        if (prefixShift >= 32 || (key >> prefixShift) == (threshold >> prefixShift)) {
          atomicAdd(&shared.histogram[(key >> shift) & bucketMask], 1u);
        }
      }
      __syncthreads();
      pickBucket(shared, shift);
      if (shared.need == shared.inBucket) {  // the whole bucket is selected: no ties to break
        exact = true;
        break;
      }
    }

    const uint32_t threshold = shared.threshold;
    if (exact) {
      // The threshold's bits below the deciding level are zero, so this takes the whole bucket.
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) out[c] = rankKey(s, c, flip) >= threshold;
    } else {
      // `threshold` is the k-th key itself: take every larger key and the first `need` equal ones.
      const int64_t need = shared.need;
      int64_t taken = 0;
      for (int64_t base = 0; base < cols; base += blockDim.x) {
        const int64_t c = base + threadIdx.x;
        const uint32_t key = c < cols ? rankKey(s, c, flip) : 0u;
        const bool tie = c < cols && key == threshold;
        unsigned tiesInChunk;
        const unsigned tiesBefore = blockExclusiveSum(tie ? 1u : 0u, shared.warpSums, tiesInChunk);
        if (c < cols) out[c] = key > threshold || (tie && taken + tiesBefore < need);
        taken += tiesInChunk;
      }
    }
    __syncthreads();  // every thread is done with the shared state before the next row resets it
  }
}

// One thread per group of m: each member's rank is the number of members that beat it (a larger key,
// or an equal key at a lower index); the n best ranks are selected.
__global__ void nmKernel(const float* scores, int64_t groups, int n, int m, bool largest, uint8_t* mask,
                         int64_t* firstNaN) {
  const uint32_t flip = largest ? 0u : 0xFFFFFFFFu;
  SPARQ_GRID_STRIDE(g, groups) {
    const float* s = scores + g * m;
    uint8_t* out = mask + g * m;
    uint32_t keys[32];
    bool sawNaN = false;
    for (int i = 0; i < m; ++i) {
      const uint32_t bits = __float_as_uint(s[i]);
      if (isNaNBits(bits) && !sawNaN) {
        recordFirst(firstNaN, g * m + i);
        sawNaN = true;
      }
      keys[i] = orderKey(bits) ^ flip;
    }
    if (sawNaN) continue;
    for (int i = 0; i < m; ++i) {
      int rank = 0;
      for (int j = 0; j < m; ++j) rank += keys[j] > keys[i] || (keys[j] == keys[i] && j < i);
      out[i] = rank < n;
    }
  }
}

__global__ void thresholdKernel(const float* scores, int64_t count, float threshold, uint8_t* mask,
                                int64_t* firstNaN) {
  SPARQ_GRID_STRIDE(i, count) {
    const float v = scores[i];
    if (v != v) recordFirst(firstNaN, i);
    mask[i] = v > threshold;
  }
}

// Zero is the all-zero bit pattern in every float type, so the kernel moves raw words of the element's size.
template <typename Word>
__global__ void applyKernel(const Word* x, const uint8_t* mask, Word* out, int64_t count) {
  SPARQ_GRID_STRIDE(i, count) { out[i] = mask[i] ? x[i] : Word(0); }
}

template <typename Word>
void launchApply(const void* x, const uint8_t* mask, void* out, int64_t count, cudaStream_t stream) {
  applyKernel<<<gridFor(count), kThreads, 0, stream>>>(static_cast<const Word*>(x), mask, static_cast<Word*>(out),
                                                        count);
}

}  // namespace

void topkMask(const float* scores, int64_t rows, int64_t cols, int64_t k, bool largest, uint8_t* mask,
              int64_t* firstNaN, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return;
  // One block per row; past a million rows the blocks loop over rows.
  const int64_t blocks = rows < (int64_t{1} << 20) ? rows : (int64_t{1} << 20);
  topkKernel<<<static_cast<unsigned>(blocks), kTopkThreads, 0, stream>>>(scores, rows, cols, k, largest, mask, firstNaN);
  checkLaunch("topkMask");
}

void nmMask(const float* scores, int64_t rows, int64_t cols, int n, int m, bool largest, uint8_t* mask,
            int64_t* firstNaN, cudaStream_t stream) {
  const int64_t groups = rows * cols / m;
  if (groups == 0) return;
  nmKernel<<<gridFor(groups), kThreads, 0, stream>>>(scores, groups, n, m, largest, mask, firstNaN);
  checkLaunch("nmMask");
}

void thresholdMask(const float* scores, int64_t count, float threshold, uint8_t* mask, int64_t* firstNaN,
                   cudaStream_t stream) {
  if (count == 0) return;
  thresholdKernel<<<gridFor(count), kThreads, 0, stream>>>(scores, count, threshold, mask, firstNaN);
  checkLaunch("thresholdMask");
}

void applyMask(const void* x, const uint8_t* mask, void* out, int64_t count, size_t elementSize, cudaStream_t stream) {
  if (count == 0) return;
  switch (elementSize) {
    case 8: launchApply<uint64_t>(x, mask, out, count, stream); break;
    case 4: launchApply<uint32_t>(x, mask, out, count, stream); break;
    case 2: launchApply<uint16_t>(x, mask, out, count, stream); break;
    default: fail(ErrorCode::Internal, "applyMask: unsupported element size " + std::to_string(elementSize));
  }
  checkLaunch("applyMask");
}

}  // namespace sparq::cuda

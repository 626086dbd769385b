// Mask selection on the device, matching the CPU reference exactly: order keys (-0 below +0), ties to
// the lower index, NaN reported. Top-k runs one block per row: a three-level radix select (11, 11, 10
// bits) with shared-memory histograms, then a write pass; rows whose k-th key is tied are finished by
// one thread walking the row in order.
#include "common.cuh"
#include "kernels.h"

namespace sparq::cuda {

namespace {

constexpr int kTopkThreads = 512;

__device__ uint32_t rowKey(const float* row, int64_t c, uint32_t flip) {
  return orderKey(__float_as_uint(row[c])) ^ flip;
}

__global__ void topkKernel(const float* scores, int64_t cols, int64_t k, bool largest, uint8_t* mask, int64_t* firstNaN) {
  __shared__ unsigned int histogram[2048];
  __shared__ uint32_t low;
  __shared__ int64_t need;
  __shared__ int64_t inBucket;
  __shared__ bool sawNaN;
  const int64_t row = blockIdx.x;
  const float* s = scores + row * cols;
  uint8_t* out = mask + row * cols;
  const uint32_t flip = largest ? 0u : 0xFFFFFFFFu;

  if (threadIdx.x == 0) {
    low = 0;
    need = k;
    sawNaN = false;
  }
  __syncthreads();
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    if (isNaNBits(__float_as_uint(s[c]))) {
      recordFirst(firstNaN, row * cols + c);
      sawNaN = true;
    }
  }
  __syncthreads();
  if (sawNaN) return;
  // Level l counts the keys whose bits above the level match `low`, by the level's bucket bits.
  const int shifts[3] = {21, 10, 0};
  const int widths[3] = {11, 11, 10};
  bool exact = false;
  for (int level = 0; level < 3 && !exact && k > 0; ++level) {
    const int shift = shifts[level], width = widths[level];
    const uint32_t buckets = 1u << width;
    for (uint32_t b = threadIdx.x; b < buckets; b += blockDim.x) histogram[b] = 0;
    __syncthreads();
    const int prefixShift = shift + width;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const uint32_t key = rowKey(s, c, flip);
      if (prefixShift >= 32 || (key >> prefixShift) == (low >> prefixShift)) {
        atomicAdd(&histogram[(key >> shift) & (buckets - 1)], 1u);
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int64_t above = 0;
      for (int64_t b = buckets - 1; b >= 0; --b) {
        if (above + histogram[b] >= need) {
          need -= above;
          inBucket = histogram[b];
          low |= static_cast<uint32_t>(b) << shift;
          break;
        }
        above += histogram[b];
      }
    }
    __syncthreads();
    exact = need == inBucket;
  }
  if (k == 0) {
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) out[c] = 0;
    return;
  }
  if (exact) {
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) out[c] = rowKey(s, c, flip) >= low;
    return;
  }
  // Ties at the threshold key: take the first `need` of them, in index order.
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) out[c] = rowKey(s, c, flip) > low;
  __syncthreads();
  if (threadIdx.x == 0) {
    int64_t left = need;
    for (int64_t c = 0; c < cols && left > 0; ++c) {
      if (rowKey(s, c, flip) == low) {
        out[c] = 1;
        --left;
      }
    }
  }
}

// One thread per group of m: rank each member by the number of members that beat it.
__global__ void nmKernel(const float* scores, int64_t groups, int n, int m, bool largest, uint8_t* mask, int64_t* firstNaN) {
  const uint32_t flip = largest ? 0u : 0xFFFFFFFFu;
  SPARQ_GRID_STRIDE(g, groups) {
    const float* s = scores + g * m;
    uint8_t* out = mask + g * m;
    uint32_t keys[32];
    bool nan = false;
    for (int i = 0; i < m; ++i) {
      const uint32_t bits = __float_as_uint(s[i]);
      if (isNaNBits(bits)) {
        recordFirst(firstNaN, g * m + i);
        nan = true;
      }
      keys[i] = orderKey(bits) ^ flip;
    }
    if (nan) continue;
    for (int i = 0; i < m; ++i) {
      int rank = 0;
      for (int j = 0; j < m; ++j) rank += keys[j] > keys[i] || (keys[j] == keys[i] && j < i);
      out[i] = rank < n;
    }
  }
}

__global__ void thresholdKernel(const float* scores, int64_t count, float threshold, uint8_t* mask, int64_t* firstNaN) {
  SPARQ_GRID_STRIDE(i, count) {
    const float v = scores[i];
    if (v != v) recordFirst(firstNaN, i);
    mask[i] = v > threshold;
  }
}

template <typename T>
__global__ void applyKernel(const T* x, const uint8_t* mask, T* out, int64_t count) {
  SPARQ_GRID_STRIDE(i, count) { out[i] = mask[i] ? x[i] : T(0); }
}

}  // namespace

void topkMask(const float* scores, int64_t rows, int64_t cols, int64_t k, bool largest, uint8_t* mask,
              int64_t* firstNaN, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return;
  // Rows beyond the grid's first dimension are launched in slices.
  for (int64_t start = 0; start < rows; start += 2147483647) {
    const int64_t slice = rows - start < 2147483647 ? rows - start : 2147483647;
    topkKernel<<<static_cast<unsigned>(slice), kTopkThreads, 0, stream>>>(scores + start * cols, cols, k, largest,
                                                                         mask + start * cols, firstNaN);
    checkLaunch("topkMask");
  }
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
  // Zeroing is a bit pattern of zeros whatever the float type, so dispatch on the element size.
  switch (elementSize) {
    case 8:
      applyKernel<<<gridFor(count), kThreads, 0, stream>>>(static_cast<const uint64_t*>(x), mask, static_cast<uint64_t*>(out), count);
      break;
    case 4:
      applyKernel<<<gridFor(count), kThreads, 0, stream>>>(static_cast<const uint32_t*>(x), mask, static_cast<uint32_t*>(out), count);
      break;
    default:
      applyKernel<<<gridFor(count), kThreads, 0, stream>>>(static_cast<const uint16_t*>(x), mask, static_cast<uint16_t*>(out), count);
  }
  checkLaunch("applyMask");
}

}  // namespace sparq::cuda

// Launch helpers shared by the .cu files.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "core/error.h"

namespace sparq::cuda {

constexpr int kThreads = 256;

// Grid size for a grid-stride loop over `count` items (capped; the loop covers the rest).
inline unsigned gridFor(int64_t count) {
  const int64_t blocks = (count + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

#define SPARQ_GRID_STRIDE(i, count) \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (count); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

// Order-preserving integer key of a float (-0 below +0); NaN must be excluded by the caller.
__device__ inline uint32_t orderKey(uint32_t bits) {
  return bits ^ (static_cast<uint32_t>(static_cast<int32_t>(bits) >> 31) | 0x80000000u);
}

__device__ inline bool isNaNBits(uint32_t bits) { return (bits & 0x7FFFFFFFu) > 0x7F800000u; }

__device__ inline void recordFirst(int64_t* first, int64_t index) {
  atomicMin(reinterpret_cast<unsigned long long*>(first), static_cast<unsigned long long>(index));
}

}  // namespace sparq::cuda

// Linear layers on packed weights on the device: y[T, N] = x[T, K]·Wᵀ (+ bias). core/packed_formats.h has
// the layouts and cpu/packed_linear.cpp the reference semantics (its row decoders); the weights are
// dequantized in registers or in a shared-memory tile, never in global memory.
//
// Batch 1 (decode; memory-bound, so the loads are what matters): one warp per output row, kGemvWarps rows per
// block, lanes walking the row in coalesced units and reducing with shuffles at the end:
//   dense    a 16-byte vector per lane (4 f32 or 8 f16/bf16) when rows and x are 16-byte aligned.
//   int4     a 16-byte run of 4 words (32 codes) per lane when rows are whole runs, else one word; a word's
//            partial dot product is scaled once when groups are whole words (zero points folded in with the
//            word's input sum).
//   2:4      one meta word per lane: 8 groups, 16 kept values (4 or 2 vector loads) and their 32 inputs.
//   2:4+int4 one meta word per lane with its two code words; one scale per meta word when groups allow.
//   BSR      32/b blocks per warp step, lane i of a block's b lanes on its input i (values are contiguous,
//            so the warp reads 32 consecutive values); int4 blocks one code word per lane.
// Batches (T >= 2): a block owns kTileRows output rows × kTileTokens tokens. For each chunk of kTileK inputs
// it stages x[tokens][chunk] in shared memory and decodes the rows' chunk of W into a shared f32 tile once
// (each format has a tile decoder: the only format-specific part), then every thread accumulates 4 rows ×
// 2 tokens from the two tiles. A weight is decoded once per kTileTokens tokens.
//
// Corrupt data (2:4 positions that do not increase, BSR row pointers or block columns that lie, nonzero
// values past K) is checked before it is used as an index, so nothing is read outside x or the packed
// tensors. The kernel records the least (row, position, reason) in the caller's flag (row-pointer faults
// first: they are encoded below every other), and failCorruptPacked turns that into the CPU backend's
// InvalidFile message, reading back the few index words it names.
//
// Not here yet: a tensor-core path (mma.sync with INT4 dequantized in registers, Marlin-style, for sm_80+
// batches) and cuSPARSELt for 2:4 (see sparse24Linear below); the CUDA backend keeps pack24/unpack24 and the
// BSR converters on the CPU (no kernels provided, so the op table reports BackendUnavailable for them).
#include <cuda_fp16.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common.cuh"
#include "kernels.h"

namespace sparq::cuda {

namespace {

// ---------------------------------------------------------------- faults

enum Fault : int64_t { kOrder = 0, kPastEnd = 1, kBlockColumn = 2 };
constexpr int64_t kMaxPosition = (int64_t{1} << 29) - 1;

// A row-pointer fault: the row itself, below every data fault.
__device__ inline void flagRowPointers(int64_t* flag, int64_t row) { recordFirst(flag, row); }

// A data fault: (row + 1) above bit 32, then the position within the row (group or block ordinal), then
// the reason, so the least flag is the first fault in row order.
__device__ inline void flagData(int64_t* flag, int64_t row, int64_t position, Fault reason) {
  const int64_t p = position < kMaxPosition ? position : kMaxPosition;
  recordFirst(flag, ((row + 1) << 32) | (p << 3) | reason);
}

// ---------------------------------------------------------------- element loads

__device__ __forceinline__ float halfBits(uint32_t b) { return __half2float(__ushort_as_half(static_cast<unsigned short>(b))); }
__device__ __forceinline__ float bf16Bits(uint32_t b) { return __uint_as_float(b << 16); }

template <DType D>
__device__ __forceinline__ float loadValue(const void* p, int64_t i) {
  if constexpr (D == DType::F16) return halfBits(static_cast<const uint16_t*>(p)[i]);
  else if constexpr (D == DType::BF16) return bf16Bits(static_cast<const uint16_t*>(p)[i]);
  else return static_cast<const float*>(p)[i];
}

// Elements per 16-byte vector.
template <DType D>
constexpr int kPerVector = D == DType::F32 ? 4 : 8;

template <DType D>
__device__ __forceinline__ void unpackVector(uint4 raw, float* out) {
  if constexpr (D == DType::F32) {
    out[0] = __uint_as_float(raw.x), out[1] = __uint_as_float(raw.y), out[2] = __uint_as_float(raw.z),
    out[3] = __uint_as_float(raw.w);
  } else {
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      out[2 * i] = D == DType::F16 ? halfBits(words[i] & 0xFFFFu) : bf16Bits(words[i] & 0xFFFFu);
      out[2 * i + 1] = D == DType::F16 ? halfBits(words[i] >> 16) : bf16Bits(words[i] >> 16);
    }
  }
}

// Σ w[i]·x[i] over 4·n inputs with x 16-byte aligned.
template <int n>
__device__ __forceinline__ float dotAligned(const float* w, const float* x) {
  float acc = 0;
#pragma unroll
  for (int i = 0; i < n; ++i) {
    const float4 v = reinterpret_cast<const float4*>(x)[i];
    acc += w[4 * i] * v.x + w[4 * i + 1] * v.y + w[4 * i + 2] * v.z + w[4 * i + 3] * v.w;
  }
  return acc;
}

__device__ __forceinline__ int nibbleOf(uint32_t word, int i) { return static_cast<int>((word >> (4 * i)) & 15u); }

__device__ __forceinline__ float warpSum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, offset);
  return v;
}

__device__ __forceinline__ void storeOutput(const LinearArgs& a, int64_t t, int64_t n, float v) {
  if (a.bias) v += a.bias[n];
  float& out = a.y[t * a.n + n];
  out = a.accumulate ? out + v : v;
}

// Checks row n's block range [begin, end) against the other rows' (rowPtr[0] = 0, rowPtr[N] = blocks,
// non-decreasing); a row whose range lies is flagged and treated as empty, so no block index past the
// arrays is ever formed. Every lane computes the same answer; lane 0 flags.
__device__ inline bool rowBlocks(const int32_t* rowPtr, int64_t n, int64_t rows, int64_t blocks, int64_t* flag,
                                 int64_t& begin, int64_t& end) {
  begin = rowPtr[n];
  end = rowPtr[n + 1];
  const bool ok = begin >= 0 && begin <= end && end <= blocks && (n > 0 || begin == 0) && (n + 1 < rows || end == blocks);
  if (!ok) {
    if ((threadIdx.x & 31) == 0) flagRowPointers(flag, n);
    begin = end = 0;
  }
  return ok;
}

// Block b's column, checked: inside 0..columns-1 and past the row's previous block.
__device__ inline bool blockColumnOk(const int32_t* blockCols, int64_t b, int64_t begin, int64_t columns, int64_t& col) {
  col = blockCols[b];
  return col >= 0 && col < columns && (b == begin || col > blockCols[b - 1]);
}

// ---------------------------------------------------------------- batch 1: one warp per row

constexpr int kGemvWarps = 8;
constexpr int kGemvThreads = 32 * kGemvWarps;

__device__ __forceinline__ int64_t gemvRow() { return static_cast<int64_t>(blockIdx.x) * kGemvWarps + threadIdx.x / 32; }

template <DType D, bool kVector>
__global__ void denseGemv(LinearArgs a, const void* __restrict__ w) {
  const int64_t n = gemvRow();
  if (n >= a.n) return;
  const int lane = threadIdx.x & 31;
  float acc = 0;
  if constexpr (kVector) {
    constexpr int per = kPerVector<D>;
    const uint4* row = reinterpret_cast<const uint4*>(static_cast<const char*>(w) + n * a.k * (D == DType::F32 ? 4 : 2));
    const int64_t vectors = a.k / per;
    for (int64_t v = lane; v < vectors; v += 32) {
      float wv[per];
      unpackVector<D>(row[v], wv);
      acc += dotAligned<per / 4>(wv, a.x + v * per);
    }
  } else {
    for (int64_t c = lane; c < a.k; c += 32) acc += loadValue<D>(w, n * a.k + c) * a.x[c];
  }
  acc = warpSum(acc);
  if (lane == 0) storeOutput(a, 0, n, acc);
}

struct Int4Args {
  const int32_t* packed;
  int64_t words;  // per row
  const void* scales;
  const int8_t* zeros;  // null: symmetric
  int64_t groupSize, groups;
};

// Σ over one word's 8 inputs at c0 of (code − 8 − zero)·scale·x, c0 + 8 <= K unless kTail.
template <DType S, bool kWordGroups, bool kAlignedX>
__device__ __forceinline__ float int4Word(const Int4Args& q, const LinearArgs& a, int64_t n, uint32_t word, int64_t c0) {
  if (kWordGroups && c0 + 8 <= a.k) {
    const int64_t g = n * q.groups + c0 / q.groupSize;
    float xs[8];
    if constexpr (kAlignedX) {
      const float4 lo = reinterpret_cast<const float4*>(a.x + c0)[0], hi = reinterpret_cast<const float4*>(a.x + c0)[1];
      xs[0] = lo.x, xs[1] = lo.y, xs[2] = lo.z, xs[3] = lo.w, xs[4] = hi.x, xs[5] = hi.y, xs[6] = hi.z, xs[7] = hi.w;
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) xs[i] = a.x[c0 + i];
    }
    float dot = 0, sum = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      dot += static_cast<float>(nibbleOf(word, i) - 8) * xs[i];
      sum += xs[i];
    }
    const float zero = q.zeros ? static_cast<float>(q.zeros[g]) : 0.0f;
    return loadValue<S>(q.scales, g) * (dot - zero * sum);
  }
  float acc = 0;
  for (int i = 0; i < 8 && c0 + i < a.k; ++i) {
    const int64_t g = n * q.groups + (c0 + i) / q.groupSize;
    const int zero = q.zeros ? q.zeros[g] : 0;
    acc += static_cast<float>(nibbleOf(word, i) - 8 - zero) * loadValue<S>(q.scales, g) * a.x[c0 + i];
  }
  return acc;
}

// kRun words per lane step: 4 (one 16-byte load, rows of whole runs, x aligned) or 1.
template <DType S, int kRun, bool kWordGroups>
__global__ void int4Gemv(LinearArgs a, Int4Args q) {
  const int64_t n = gemvRow();
  if (n >= a.n) return;
  const int lane = threadIdx.x & 31;
  const int32_t* row = q.packed + n * q.words;
  float acc = 0;
  if constexpr (kRun == 4) {
    for (int64_t u = lane; u * 4 < q.words; u += 32) {
      const uint4 raw = reinterpret_cast<const uint4*>(row)[u];
      const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
      for (int j = 0; j < 4; ++j) acc += int4Word<S, kWordGroups, true>(q, a, n, words[j], (4 * u + j) * 8);
    }
  } else {
    for (int64_t u = lane; u < q.words; u += 32) acc += int4Word<S, kWordGroups, false>(q, a, n, static_cast<uint32_t>(row[u]), u * 8);
  }
  acc = warpSum(acc);
  if (lane == 0) storeOutput(a, 0, n, acc);
}

struct Sparse24Args {
  const void* values;   // float kept values (2:4), or
  const int32_t* packed;  // int4 codes of the kept values (2:4+int4), with
  const void* scales;     // scales [N, groups] over groupSize inputs
  int64_t groupSize, groups, packedWords;
  const int32_t* meta;
  int64_t kept, metaWords;
};

// Adds v·x[c] for kept value j of row n (in group `group`), or flags a nonzero value past K.
__device__ __forceinline__ float keptTerm(const LinearArgs& a, int64_t n, int64_t group, int64_t c, float v, bool nonzero,
                                          int64_t* flag) {
  if (c < a.k) return v * a.x[c];
  if (nonzero) flagData(flag, n, group, kPastEnd);
  return 0.0f;
}

// One meta word per lane: its 8 groups' 16 kept values, float (kInt4 false) or int4 codes.
template <DType D, bool kInt4, bool kVector, bool kChunkGroups>
__global__ void sparse24Gemv(LinearArgs a, Sparse24Args s, int64_t* flag) {
  const int64_t n = gemvRow();
  if (n >= a.n) return;
  const int lane = threadIdx.x & 31;
  float acc = 0;
  for (int64_t m = lane; m < s.metaWords; m += 32) {
    const uint32_t bits = static_cast<uint32_t>(s.meta[n * s.metaWords + m]);
    const int64_t j0 = 16 * m;
    const int count = s.kept - j0 < 16 ? static_cast<int>(s.kept - j0) : 16;
    float v[16];
    bool nonzero[16];
    float chunkScale = 0;
    if constexpr (kInt4) {
      const int32_t* row = s.packed + n * s.packedWords;
      const uint32_t w0 = static_cast<uint32_t>(row[2 * m]);
      const uint32_t w1 = 2 * m + 1 < s.packedWords ? static_cast<uint32_t>(row[2 * m + 1]) : 0x88888888u;
      if (kChunkGroups) chunkScale = loadValue<D>(s.scales, n * s.groups + 32 * m / s.groupSize);
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        const int code = nibbleOf(i < 8 ? w0 : w1, i & 7) - 8;
        v[i] = static_cast<float>(code);  // scaled below, per column
        nonzero[i] = code != 0;
      }
    } else {
      if (kVector && count == 16) {
        const uint4* p = reinterpret_cast<const uint4*>(static_cast<const char*>(s.values) +
                                                        (n * s.kept + j0) * (D == DType::F32 ? 4 : 2));
#pragma unroll
        for (int i = 0; i < 16 / kPerVector<D>; ++i) unpackVector<D>(p[i], v + i * kPerVector<D>);
      } else {
        for (int i = 0; i < 16; ++i) v[i] = i < count ? loadValue<D>(s.values, n * s.kept + j0 + i) : 0.0f;
      }
#pragma unroll
      for (int i = 0; i < 16; ++i) nonzero[i] = v[i] != 0.0f;
    }
    float chunk = 0;
#pragma unroll
    for (int g = 0; g < 8; ++g) {
      if (2 * g >= count) break;
      const int64_t group = 8 * m + g;
      const int p0 = (bits >> (4 * g)) & 3, p1 = (bits >> (4 * g + 2)) & 3;
      if (p1 <= p0) {
        flagData(flag, n, group, kOrder);
        continue;
      }
      const int64_t c0 = 4 * group + p0, c1 = 4 * group + p1;
      float w0 = v[2 * g], w1 = v[2 * g + 1];
      if (kInt4 && !kChunkGroups) {
        if (c0 < a.k) w0 *= loadValue<D>(s.scales, n * s.groups + c0 / s.groupSize);
        if (c1 < a.k) w1 *= loadValue<D>(s.scales, n * s.groups + c1 / s.groupSize);
      }
      chunk += keptTerm(a, n, group, c0, w0, nonzero[2 * g], flag);
      chunk += keptTerm(a, n, group, c1, w1, nonzero[2 * g + 1], flag);
    }
    acc += kInt4 && kChunkGroups ? chunkScale * chunk : chunk;
  }
  acc = warpSum(acc);
  if (lane == 0) storeOutput(a, 0, n, acc);
}

struct BsrArgs {
  const int32_t* rowPtr;
  const int32_t* blockCols;
  int64_t blocks, columns;  // columns: ceil(K / blockSize)
  const void* values;       // float values [blocks, b], or
  const int32_t* packed;    // int4 codes [blocks, b/8] with
  const void* blockScales;  // one scale per block
};

// 32/kBlock blocks per warp step; lane i of a block's kBlock lanes takes its input i.
template <DType D, int kBlock>
__global__ void bsrGemv(LinearArgs a, BsrArgs s, int64_t* flag) {
  const int64_t n = gemvRow();
  if (n >= a.n) return;
  const int lane = threadIdx.x & 31;
  int64_t begin, end;
  rowBlocks(s.rowPtr, n, a.n, s.blocks, flag, begin, end);
  constexpr int perStep = 32 / kBlock;
  const int sub = lane / kBlock, i = lane % kBlock;
  float acc = 0;
  for (int64_t b0 = begin; b0 < end; b0 += perStep) {
    const int64_t b = b0 + sub;
    if (b >= end) break;
    int64_t col;
    if (!blockColumnOk(s.blockCols, b, begin, s.columns, col)) {
      if (i == 0) flagData(flag, n, b - begin, kBlockColumn);
      continue;
    }
    const int64_t c = col * kBlock + i;
    const float v = loadValue<D>(s.values, b * kBlock + i);
    if (c < a.k) acc += v * a.x[c];
    else if (v != 0.0f) flagData(flag, n, b - begin, kPastEnd);
  }
  acc = warpSum(acc);
  if (lane == 0) storeOutput(a, 0, n, acc);
}

// One code word (8 inputs) per lane: 32/(kBlock/8) blocks per warp step.
template <DType S, int kBlock>
__global__ void bsrInt4Gemv(LinearArgs a, BsrArgs s, int64_t* flag) {
  const int64_t n = gemvRow();
  if (n >= a.n) return;
  const int lane = threadIdx.x & 31;
  int64_t begin, end;
  rowBlocks(s.rowPtr, n, a.n, s.blocks, flag, begin, end);
  constexpr int wordsPerBlock = kBlock / 8, perStep = 32 / wordsPerBlock;
  const int sub = lane / wordsPerBlock, wi = lane % wordsPerBlock;
  float acc = 0;
  for (int64_t b0 = begin; b0 < end; b0 += perStep) {
    const int64_t b = b0 + sub;
    if (b >= end) break;
    int64_t col;
    if (!blockColumnOk(s.blockCols, b, begin, s.columns, col)) {
      if (wi == 0) flagData(flag, n, b - begin, kBlockColumn);
      continue;
    }
    const uint32_t word = static_cast<uint32_t>(s.packed[b * wordsPerBlock + wi]);
    const float scale = loadValue<S>(s.blockScales, b);
    const int64_t c0 = col * kBlock + 8 * wi;
    if (c0 + 8 <= a.k) {
      float dot = 0;
#pragma unroll
      for (int j = 0; j < 8; ++j) dot += static_cast<float>(nibbleOf(word, j) - 8) * a.x[c0 + j];
      acc += scale * dot;
    } else {
      for (int j = 0; j < 8; ++j) {
        const float v = static_cast<float>(nibbleOf(word, j) - 8) * scale;
        if (c0 + j < a.k) acc += v * a.x[c0 + j];
        else if (v != 0.0f) flagData(flag, n, b - begin, kPastEnd);
      }
    }
  }
  acc = warpSum(acc);
  if (lane == 0) storeOutput(a, 0, n, acc);
}

// ---------------------------------------------------------------- batches: decoded tiles × staged x

constexpr int kTileRows = 32, kTileTokens = 64, kTileK = 64, kTileThreads = 256;
constexpr int kTileWarps = kTileThreads / 32;
constexpr int kRowsPerWarp = kTileRows / kTileWarps;  // rows each warp accumulates (and decodes, for BSR)
static_assert(kTileTokens == 64 && kRowsPerWarp == 4, "the accumulate loop gives each lane tokens lane and lane + 32");

using Tile = float[kTileRows][kTileK];

struct NoState {};

// Each decoder writes every element of the tile for rows n0.. and inputs kc0..kc0 + kTileK (zero where W
// has no weight, past K and past N), and may synchronize (all threads call it).
template <DType D>
struct DenseTile {
  const void* w;
  using State = NoState;
  __device__ void begin(State&, int64_t, const LinearArgs&) const {}
  __device__ void decode(Tile& tile, int64_t n0, int64_t kc0, const LinearArgs& a, State&) const {
    for (int i = threadIdx.x; i < kTileRows * kTileK; i += kTileThreads) {
      const int r = i / kTileK, kk = i % kTileK;
      const int64_t n = n0 + r, c = kc0 + kk;
      tile[r][kk] = n < a.n && c < a.k ? loadValue<D>(w, n * a.k + c) : 0.0f;
    }
  }
};

template <DType S>
struct Int4Tile {
  Int4Args q;
  using State = NoState;
  static_assert(kTileRows * kTileK / 8 == kTileThreads, "one code word per thread");
  __device__ void begin(State&, int64_t, const LinearArgs&) const {}
  __device__ void decode(Tile& tile, int64_t n0, int64_t kc0, const LinearArgs& a, State&) const {
    const int r = threadIdx.x / (kTileK / 8), wi = threadIdx.x % (kTileK / 8);
    const int64_t n = n0 + r, word = kc0 / 8 + wi;
    float out[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (n < a.n && word < q.words) {
      const uint32_t bits = static_cast<uint32_t>(q.packed[n * q.words + word]);
      for (int i = 0; i < 8; ++i) {
        const int64_t c = word * 8 + i;
        if (c >= a.k) break;
        const int64_t g = n * q.groups + c / q.groupSize;
        const int zero = q.zeros ? q.zeros[g] : 0;
        out[i] = static_cast<float>(nibbleOf(bits, i) - 8 - zero) * loadValue<S>(q.scales, g);
      }
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) tile[r][8 * wi + i] = out[i];
  }
};

// A group of 4 inputs per thread step: both kept values placed, the other two zero.
template <DType D, bool kInt4>
struct Sparse24Tile {
  Sparse24Args s;
  int64_t* flag;
  using State = NoState;
  __device__ void begin(State&, int64_t, const LinearArgs&) const {}
  __device__ void decode(Tile& tile, int64_t n0, int64_t kc0, const LinearArgs& a, State&) const {
    constexpr int groupsPerRow = kTileK / 4;
    const int64_t rowGroups = s.kept / 2;
    for (int i = threadIdx.x; i < kTileRows * groupsPerRow; i += kTileThreads) {
      const int r = i / groupsPerRow, g = i % groupsPerRow;
      const int64_t n = n0 + r, group = kc0 / 4 + g;
      float out[4] = {0, 0, 0, 0};
      if (n < a.n && group < rowGroups) {
        const uint32_t bits = static_cast<uint32_t>(s.meta[n * s.metaWords + group / 8]) >> (4 * (group % 8));
        const int p[2] = {static_cast<int>(bits & 3), static_cast<int>((bits >> 2) & 3)};
        if (p[1] <= p[0]) {
          flagData(flag, n, group, kOrder);
        } else {
          for (int h = 0; h < 2; ++h) {
            const int64_t j = 2 * group + h, c = 4 * group + p[h];
            float v;
            bool nonzero;
            if constexpr (kInt4) {
              const int code = nibbleOf(static_cast<uint32_t>(s.packed[n * s.packedWords + j / 8]), static_cast<int>(j % 8)) - 8;
              nonzero = code != 0;
              v = c < a.k ? static_cast<float>(code) * loadValue<D>(s.scales, n * s.groups + c / s.groupSize) : 0.0f;
            } else {
              v = loadValue<D>(s.values, n * s.kept + j);
              nonzero = v != 0.0f;
            }
            if (c < a.k) out[p[h]] = v;
            else if (nonzero) flagData(flag, n, group, kPastEnd);
          }
        }
      }
#pragma unroll
      for (int q = 0; q < 4; ++q) tile[r][4 * g + q] = out[q];
    }
  }
};

// Warp w decodes rows w, w + kTileWarps, ...: per chunk, its lanes check the next 32 blocks of a row at
// once; those inside the chunk are a prefix (columns increase), and their values are scattered into the
// zeroed tile. Block sizes divide kTileK, so a block lies inside one chunk.
template <DType D, bool kInt4>
struct BsrTile {
  BsrArgs s;
  int64_t blockSize;
  int64_t* flag;
  struct State {
    int64_t first[kRowsPerWarp], cursor[kRowsPerWarp], end[kRowsPerWarp];
  };
  // The warp's rows' block ranges, checked.
  __device__ void begin(State& state, int64_t n0, const LinearArgs& a) const {
    const int warp = threadIdx.x / 32;
    for (int q = 0; q < kRowsPerWarp; ++q) {
      const int64_t n = n0 + warp + q * kTileWarps;
      state.first[q] = state.end[q] = 0;
      if (n < a.n) rowBlocks(s.rowPtr, n, a.n, s.blocks, flag, state.first[q], state.end[q]);
      state.cursor[q] = state.first[q];
    }
  }
  __device__ float value(int64_t b, int64_t i) const {
    if constexpr (kInt4) {
      const uint32_t word = static_cast<uint32_t>(s.packed[b * (blockSize / 8) + i / 8]);
      return static_cast<float>(nibbleOf(word, static_cast<int>(i % 8)) - 8) * loadValue<D>(s.blockScales, b);
    } else {
      return loadValue<D>(s.values, b * blockSize + i);
    }
  }
  __device__ void decode(Tile& tile, int64_t n0, int64_t kc0, const LinearArgs& a, State& state) const {
    for (int i = threadIdx.x; i < kTileRows * kTileK; i += kTileThreads) tile[i / kTileK][i % kTileK] = 0.0f;
    __syncthreads();
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    for (int q = 0; q < kRowsPerWarp; ++q) {
      const int r = warp + q * kTileWarps;
      const int64_t n = n0 + r;
      // Warp-uniform: every lane holds the same cursor and end.
      while (state.cursor[q] < state.end[q]) {
        const int64_t b = state.cursor[q] + lane;
        int64_t col = 0;
        bool bad = false, inside = false;
        if (b < state.end[q]) {
          bad = !blockColumnOk(s.blockCols, b, state.first[q], s.columns, col);
          inside = !bad && col * blockSize < kc0 + kTileK;
        }
        const unsigned badLanes = __ballot_sync(0xFFFFFFFFu, bad);
        if (badLanes) {
          if (lane == __ffs(badLanes) - 1) flagData(flag, n, b - state.first[q], kBlockColumn);
          state.cursor[q] = state.end[q];  // the op fails; the rest of the row is not read
          break;
        }
        const int count = __popc(__ballot_sync(0xFFFFFFFFu, inside));
        for (int64_t e = lane; e < count * blockSize; e += 32) {
          const int64_t bb = state.cursor[q] + e / blockSize, i = e % blockSize;
          const int64_t c = static_cast<int64_t>(s.blockCols[bb]) * blockSize + i;
          const float v = value(bb, i);
          if (c < a.k) {
            if (c >= kc0 && c < kc0 + kTileK) tile[r][c - kc0] = v;  // always true for checked columns
          } else if (v != 0.0f) {
            flagData(flag, n, bb - state.first[q], kPastEnd);
          }
        }
        state.cursor[q] += count;
        if (count < 32) break;
      }
    }
  }
};

template <class Decoder>
__global__ void __launch_bounds__(kTileThreads) tiledLinear(LinearArgs a, Decoder decoder) {
  __shared__ float xs[kTileTokens][kTileK + 1];  // +1: lanes reading tokens lane and lane + 32 hit distinct banks
  __shared__ Tile w;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kTileRows, t0 = static_cast<int64_t>(blockIdx.y) * kTileTokens;
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  typename Decoder::State state;
  decoder.begin(state, n0, a);
  float acc[kRowsPerWarp][2] = {};
  for (int64_t kc0 = 0; kc0 < a.k; kc0 += kTileK) {
    for (int i = threadIdx.x; i < kTileTokens * kTileK; i += kTileThreads) {
      const int t = i / kTileK, kk = i % kTileK;
      const int64_t token = t0 + t, c = kc0 + kk;
      xs[t][kk] = token < a.tokens && c < a.k ? a.x[token * a.k + c] : 0.0f;
    }
    decoder.decode(w, n0, kc0, a, state);
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < kTileK; ++kk) {
      const float x0 = xs[lane][kk], x1 = xs[lane + 32][kk];
#pragma unroll
      for (int q = 0; q < kRowsPerWarp; ++q) {
        const float wv = w[warp * kRowsPerWarp + q][kk];  // one address per warp: a broadcast
        acc[q][0] += wv * x0;
        acc[q][1] += wv * x1;
      }
    }
    __syncthreads();
  }
  for (int q = 0; q < kRowsPerWarp; ++q) {
    const int64_t n = n0 + warp * kRowsPerWarp + q;
    for (int h = 0; h < 2; ++h) {
      const int64_t token = t0 + lane + 32 * h;
      if (n < a.n && token < a.tokens) storeOutput(a, token, n, acc[q][h]);
    }
  }
}

// ---------------------------------------------------------------- launch helpers

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

unsigned gemvBlocks(int64_t rows) { return static_cast<unsigned>((rows + kGemvWarps - 1) / kGemvWarps); }

template <class Decoder>
void launchTiles(const LinearArgs& a, const Decoder& decoder, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((a.n + kTileRows - 1) / kTileRows),
                  static_cast<unsigned>((a.tokens + kTileTokens - 1) / kTileTokens));
  tiledLinear<Decoder><<<grid, kTileThreads, 0, stream>>>(a, decoder);
}

void checkShape(const LinearArgs& a, const char* op) {
  SPARQ_CHECK(a.n <= (int64_t{1} << 31) - 2 && (a.n + kGemvWarps - 1) / kGemvWarps < (int64_t{1} << 31) &&
                  (a.tokens + kTileTokens - 1) / kTileTokens <= 65535,
              ErrorCode::InvalidArgument,
              std::string(op) + ": " + std::to_string(a.tokens) + " tokens × " + std::to_string(a.n) +
                  " outputs exceed the CUDA kernels' grid");
}

// Calls fn<D>(args...) for a float storage dtype D (one instantiation per dtype, no switch in the kernels).
#define SPARQ_BY_FLOAT_TYPE(dtype, fn, ...)                         \
  switch (dtype) {                                                   \
    case DType::F16: fn<DType::F16>(__VA_ARGS__); break;             \
    case DType::BF16: fn<DType::BF16>(__VA_ARGS__); break;           \
    default: fn<DType::F32>(__VA_ARGS__); break;                     \
  }

template <DType D>
void denseAs(const LinearArgs& a, const void* w, cudaStream_t stream) {
  if (a.tokens > 1) return launchTiles(a, DenseTile<D>{w}, stream);
  if (a.k % kPerVector<D> == 0 && aligned16(w) && aligned16(a.x)) {
    denseGemv<D, true><<<gemvBlocks(a.n), kGemvThreads, 0, stream>>>(a, w);
  } else {
    denseGemv<D, false><<<gemvBlocks(a.n), kGemvThreads, 0, stream>>>(a, w);
  }
}

template <DType S>
void int4As(const LinearArgs& a, const Int4Args& q, cudaStream_t stream) {
  if (a.tokens > 1) return launchTiles(a, Int4Tile<S>{q}, stream);
  const unsigned blocks = gemvBlocks(a.n);
  const bool run = q.words % 4 == 0 && aligned16(q.packed) && aligned16(a.x);
  const bool wordGroups = q.groupSize % 8 == 0;
  if (run && wordGroups) int4Gemv<S, 4, true><<<blocks, kGemvThreads, 0, stream>>>(a, q);
  else if (run) int4Gemv<S, 4, false><<<blocks, kGemvThreads, 0, stream>>>(a, q);
  else if (wordGroups) int4Gemv<S, 1, true><<<blocks, kGemvThreads, 0, stream>>>(a, q);
  else int4Gemv<S, 1, false><<<blocks, kGemvThreads, 0, stream>>>(a, q);
}

template <DType D>
void sparse24As(const LinearArgs& a, const Sparse24Args& s, int64_t* flag, cudaStream_t stream) {
  if (a.tokens > 1) return launchTiles(a, Sparse24Tile<D, false>{s, flag}, stream);
  if ((s.kept * (D == DType::F32 ? 4 : 2)) % 16 == 0 && aligned16(s.values)) {
    sparse24Gemv<D, false, true, false><<<gemvBlocks(a.n), kGemvThreads, 0, stream>>>(a, s, flag);
  } else {
    sparse24Gemv<D, false, false, false><<<gemvBlocks(a.n), kGemvThreads, 0, stream>>>(a, s, flag);
  }
}

template <DType S>
void sparse24Int4As(const LinearArgs& a, const Sparse24Args& s, int64_t* flag, cudaStream_t stream) {
  if (a.tokens > 1) return launchTiles(a, Sparse24Tile<S, true>{s, flag}, stream);
  if (s.groupSize % 32 == 0) {
    sparse24Gemv<S, true, false, true><<<gemvBlocks(a.n), kGemvThreads, 0, stream>>>(a, s, flag);
  } else {
    sparse24Gemv<S, true, false, false><<<gemvBlocks(a.n), kGemvThreads, 0, stream>>>(a, s, flag);
  }
}

template <DType D>
void bsrAs(const LinearArgs& a, const BsrArgs& s, int64_t blockSize, int64_t* flag, cudaStream_t stream) {
  if (a.tokens > 1) return launchTiles(a, BsrTile<D, false>{s, blockSize, flag}, stream);
  const unsigned grid = gemvBlocks(a.n);
  switch (blockSize) {
    case 1: bsrGemv<D, 1><<<grid, kGemvThreads, 0, stream>>>(a, s, flag); break;
    case 8: bsrGemv<D, 8><<<grid, kGemvThreads, 0, stream>>>(a, s, flag); break;
    case 16: bsrGemv<D, 16><<<grid, kGemvThreads, 0, stream>>>(a, s, flag); break;
    default: bsrGemv<D, 32><<<grid, kGemvThreads, 0, stream>>>(a, s, flag); break;
  }
}

template <DType S>
void bsrInt4As(const LinearArgs& a, const BsrArgs& s, int64_t blockSize, int64_t* flag, cudaStream_t stream) {
  if (a.tokens > 1) return launchTiles(a, BsrTile<S, true>{s, blockSize, flag}, stream);
  const unsigned grid = gemvBlocks(a.n);
  switch (blockSize) {
    case 8: bsrInt4Gemv<S, 8><<<grid, kGemvThreads, 0, stream>>>(a, s, flag); break;
    case 16: bsrInt4Gemv<S, 16><<<grid, kGemvThreads, 0, stream>>>(a, s, flag); break;
    default: bsrInt4Gemv<S, 32><<<grid, kGemvThreads, 0, stream>>>(a, s, flag); break;
  }
}

int32_t readInt(const int32_t* device, int64_t i, cudaStream_t stream) {
  int32_t v = 0;
  cudaMemcpyAsync(&v, device + i, sizeof v, cudaMemcpyDeviceToHost, stream);
  cudaStreamSynchronize(stream);
  return v;
}

}  // namespace

// ---------------------------------------------------------------- launchers

void denseLinear(const LinearArgs& a, const void* w, DType wType, cudaStream_t stream) {
  if (a.tokens == 0 || a.n == 0) return;
  checkShape(a, "denseLinear");
  SPARQ_BY_FLOAT_TYPE(wType, denseAs, a, w, stream);
  checkLaunch("denseLinear");
}

void int4Linear(const LinearArgs& a, const int32_t* packed, const void* scales, DType scaleType, const int8_t* zeros,
                int64_t groupSize, cudaStream_t stream) {
  if (a.tokens == 0 || a.n == 0) return;
  checkShape(a, "int4Linear");
  const Int4Args q{packed, (a.k + 7) / 8, scales, zeros, groupSize, (a.k + groupSize - 1) / groupSize};
  SPARQ_BY_FLOAT_TYPE(scaleType, int4As, a, q, stream);
  checkLaunch("int4Linear");
}

// cuSPARSELt would plug in here for batches on sm_80+: cusparseLtStructuredDescriptorInit over the weight
// and cusparseLtSpMMACompress into its own layout (so the packed values and meta would be converted once,
// when the weight is loaded), then cusparseLtMatmul for T >= 16. This machine's toolkit has no cuSPARSELt.
void sparse24Linear(const LinearArgs& a, const void* values, DType valueType, const int32_t* meta, int64_t* flag,
                    cudaStream_t stream) {
  if (a.tokens == 0 || a.n == 0) return;
  checkShape(a, "sparse24Linear");
  const int64_t kept = 2 * ((a.k + 3) / 4);
  const Sparse24Args s{values, nullptr, nullptr, 1, 0, 0, meta, kept, (kept + 15) / 16};
  SPARQ_BY_FLOAT_TYPE(valueType, sparse24As, a, s, flag, stream);
  checkLaunch("sparse24Linear");
}

void sparse24Int4Linear(const LinearArgs& a, const int32_t* packed, const int32_t* meta, const void* scales,
                        DType scaleType, int64_t groupSize, int64_t* flag, cudaStream_t stream) {
  if (a.tokens == 0 || a.n == 0) return;
  checkShape(a, "sparse24Int4Linear");
  const int64_t kept = 2 * ((a.k + 3) / 4);
  const Sparse24Args s{nullptr, packed, scales, groupSize, (a.k + groupSize - 1) / groupSize, (kept + 7) / 8,
                       meta, kept, (kept + 15) / 16};
  SPARQ_BY_FLOAT_TYPE(scaleType, sparse24Int4As, a, s, flag, stream);
  checkLaunch("sparse24Int4Linear");
}

void bsrLinear(const LinearArgs& a, const int32_t* rowPtr, const int32_t* blockCols, int64_t blocks, const void* values,
               DType valueType, int64_t blockSize, int64_t* flag, cudaStream_t stream) {
  if (a.tokens == 0 || a.n == 0) return;
  checkShape(a, "bsrLinear");
  const BsrArgs s{rowPtr, blockCols, blocks, (a.k + blockSize - 1) / blockSize, values, nullptr, nullptr};
  SPARQ_BY_FLOAT_TYPE(valueType, bsrAs, a, s, blockSize, flag, stream);
  checkLaunch("bsrLinear");
}

void bsrInt4Linear(const LinearArgs& a, const int32_t* rowPtr, const int32_t* blockCols, int64_t blocks,
                   const int32_t* packed, const void* blockScales, DType scaleType, int64_t blockSize, int64_t* flag,
                   cudaStream_t stream) {
  if (a.tokens == 0 || a.n == 0) return;
  checkShape(a, "bsrInt4Linear");
  const BsrArgs s{rowPtr, blockCols, blocks, (a.k + blockSize - 1) / blockSize, nullptr, packed, blockScales};
  SPARQ_BY_FLOAT_TYPE(scaleType, bsrInt4As, a, s, blockSize, flag, stream);
  checkLaunch("bsrInt4Linear");
}

void failCorruptPacked(const char* op, int64_t flag, const PackedIndex& index, cudaStream_t stream) {
  const std::string name(op);
  if (flag < (int64_t{1} << 32)) {
    // A row-pointer fault: name it as the CPU's check does, in its order.
    std::vector<int32_t> p(static_cast<size_t>(index.rows + 1));
    cudaMemcpyAsync(p.data(), index.rowPtr, p.size() * sizeof(int32_t), cudaMemcpyDeviceToHost, stream);
    cudaStreamSynchronize(stream);
    if (p[0] != 0) fail(ErrorCode::InvalidFile, name + ": rowPtr[0] must be 0, got " + std::to_string(p[0]));
    for (int64_t r = 0; r < index.rows; ++r) {
      if (p[r + 1] < p[r]) {
        fail(ErrorCode::InvalidFile, name + ": rowPtr decreases at row " + std::to_string(r) + " (" + std::to_string(p[r]) +
                                         " then " + std::to_string(p[r + 1]) + ")");
      }
    }
    fail(ErrorCode::InvalidFile, name + ": rowPtr ends at " + std::to_string(p[index.rows]) + " but there are " +
                                     std::to_string(index.blocks) + " blocks");
  }
  const int64_t row = (flag >> 32) - 1, position = (flag & 0xFFFFFFFF) >> 3;
  const int reason = static_cast<int>(flag & 7);
  const std::string rowName = "row " + std::to_string(row);
  if (!index.rowPtr) {  // 2:4: position is the group
    if (reason == kOrder) {
      const uint32_t word = static_cast<uint32_t>(readInt(index.meta, row * index.metaWords + position / 8, stream));
      const int shift = 4 * static_cast<int>(position % 8);
      fail(ErrorCode::InvalidFile, name + ": meta of " + rowName + ", group " + std::to_string(position) + " lists positions " +
                                       std::to_string((word >> shift) & 3) + " and " + std::to_string((word >> (shift + 2)) & 3) +
                                       " (must increase)");
    }
    fail(ErrorCode::InvalidFile, name + ": " + rowName + " keeps a nonzero " + index.keptName + " past the last input");
  }
  // BSR: position is the block's ordinal within the row.
  const int64_t b = readInt(index.rowPtr, row, stream) + position;
  if (reason == kPastEnd) {
    fail(ErrorCode::InvalidFile, name + ": " + rowName + ": block " + std::to_string(b) + " holds a nonzero value past the last input");
  }
  const int64_t c = readInt(index.blockCols, b, stream);
  const bool outside = c < 0 || c >= index.blockColumns;
  fail(ErrorCode::InvalidFile,
       name + ": " + rowName + ": blockCols[" + std::to_string(b) + "] = " + std::to_string(c) +
           (outside ? " is outside 0.." + std::to_string(index.blockColumns - 1)
                    : " does not follow the row's previous block " + std::to_string(readInt(index.blockCols, b - 1, stream))));
}

}  // namespace sparq::cuda

// Integer weight quantization on the CPU: round to nearest on the grid of core/quant.h, and the packed
// layout of compressed-tensors (codes + 2^(b−1), little-endian bit positions along each row, values
// crossing word boundaries when b does not divide 32). Each kernel body is written once and compiled
// for the scalar reference, AVX2 and AVX-512 (simd.h); rows run in parallel on the pool.
#include "quant.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/pool.h"
#include "simd.h"

namespace sparq::cpu {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the byte-wise packing paths assume a little-endian CPU");

namespace {

int64_t groupCount(const TensorView& scales) { return scales.shape[1]; }

// Refuses a groupOf entry outside the scales' groups before any output is written.
void checkGroupOf(const TensorView& groupOf, int64_t groups, const char* op) {
  if (groupOf.numel() == 0) return;
  const int32_t* g = groupOf.as<const int32_t>();
  for (int64_t c = 0; c < groupOf.numel(); ++c) {
    SPARQ_CHECK(g[c] >= 0 && g[c] < groups, ErrorCode::InvalidArgument,
                std::string(op) + ": groupOf[" + std::to_string(c) + "] = " + std::to_string(g[c]) + " is not a group of 0.." +
                    std::to_string(groups - 1));
  }
}

// ---- round to nearest ---------------------------------------------------------------------------------

// One row: each group's range → its grid, then every weight's code and decoding. Groups are contiguous
// (groupOf null) or given per column.
SPARQ_INLINE void rtnRowBody(const float* w, int64_t cols, const QuantGrid& grid, const int32_t* groupOf, int64_t groups,
                            float* lo, float* hi, int8_t* codes, float* scales, int8_t* zeros, float* out) {
  const float qmin = static_cast<float>(quantMin(grid.bits)), qmax = static_cast<float>(quantMax(grid.bits));
  if (groupOf) {
    for (int64_t g = 0; g < groups; ++g) {
      lo[g] = 0.0f;
      hi[g] = 0.0f;
    }
    for (int64_t c = 0; c < cols; ++c) {
      lo[groupOf[c]] = std::fmin(lo[groupOf[c]], w[c]);
      hi[groupOf[c]] = std::fmax(hi[groupOf[c]], w[c]);
    }
    for (int64_t g = 0; g < groups; ++g) {
      float zero;
      groupParams(lo[g], hi[g], grid, scales[g], zero);
      zeros[g] = static_cast<int8_t>(zero);
    }
    for (int64_t c = 0; c < cols; ++c) {
      const float scale = scales[groupOf[c]], zero = zeros[groupOf[c]];
      const float code = quantizeValue(w[c], scale, zero, qmin, qmax);
      codes[c] = static_cast<int8_t>(code);
      out[c] = dequantizeValue(code, zero, scale);
    }
    return;
  }
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t begin = g * grid.groupSize, end = std::min(cols, begin + grid.groupSize);
    float mn = 0.0f, mx = 0.0f;
    for (int64_t c = begin; c < end; ++c) {
      mn = std::fmin(mn, w[c]);
      mx = std::fmax(mx, w[c]);
    }
    float scale, zero;
    groupParams(mn, mx, grid, scale, zero);
    scales[g] = scale;
    zeros[g] = static_cast<int8_t>(zero);
    // quantizeValue and dequantizeValue spelled so that the compiler vectorizes them (the weights are
    // finite, checked when loaded, so the comparisons equal fmin/fmax).
    for (int64_t c = begin; c < end; ++c) {
      float v = w[c] / scale + zero;
      v = v < qmin ? qmin : v;
      v = v > qmax ? qmax : v;
      const float code = std::nearbyint(v);
      codes[c] = static_cast<int8_t>(static_cast<int32_t>(code));
      out[c] = (code - zero) * scale + 0.0f;
    }
  }
}

using RtnRowFn = void (*)(const float*, int64_t, const QuantGrid&, const int32_t*, int64_t, float*, float*, int8_t*, float*,
                          int8_t*, float*);
void rtnRowGeneric(const float* w, int64_t cols, const QuantGrid& grid, const int32_t* groupOf, int64_t groups, float* lo,
                   float* hi, int8_t* codes, float* scales, int8_t* zeros, float* out) {
  rtnRowBody(w, cols, grid, groupOf, groups, lo, hi, codes, scales, zeros, out);
}
SPARQ_TARGET_AVX2 void rtnRowAvx2(const float* w, int64_t cols, const QuantGrid& grid, const int32_t* groupOf, int64_t groups,
                                  float* lo, float* hi, int8_t* codes, float* scales, int8_t* zeros, float* out) {
  rtnRowBody(w, cols, grid, groupOf, groups, lo, hi, codes, scales, zeros, out);
}
SPARQ_TARGET_AVX512 void rtnRowAvx512(const float* w, int64_t cols, const QuantGrid& grid, const int32_t* groupOf,
                                      int64_t groups, float* lo, float* hi, int8_t* codes, float* scales, int8_t* zeros,
                                      float* out) {
  rtnRowBody(w, cols, grid, groupOf, groups, lo, hi, codes, scales, zeros, out);
}

// ---- packing --------------------------------------------------------------------------------------------

// Element i of a row occupies bits [i·b, i·b + b) of the row's bit string; 32-bit words, low bits first.
// Rows are whole words, so on a little-endian machine the 2-, 4- and 8-bit layouts are plain byte
// layouts (element 0 in the low bits of byte 0): byte loops the compiler vectorizes.
SPARQ_INLINE void packRowBody(const int8_t* codes, int64_t cols, int bits, uint32_t* words, int64_t wordCount) {
  const uint32_t offset = 1u << (bits - 1), valueMask = (1u << bits) - 1u;
  uint8_t* bytes = reinterpret_cast<uint8_t*>(words);
  if (bits == 8) {
    const int64_t n = cols;
    for (int64_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>(codes[i] + 128);
    for (int64_t i = n; i < wordCount * 4; ++i) bytes[i] = 0;
    return;
  }
  if (bits == 4) {
    const int64_t pairs = cols / 2;
    for (int64_t i = 0; i < pairs; ++i) {
      bytes[i] = static_cast<uint8_t>(((codes[2 * i] + 8) & 15) | (((codes[2 * i + 1] + 8) & 15) << 4));
    }
    int64_t next = pairs;
    if (cols % 2) bytes[next++] = static_cast<uint8_t>((codes[cols - 1] + 8) & 15);
    for (int64_t i = next; i < wordCount * 4; ++i) bytes[i] = 0;
    return;
  }
  if (32 % bits == 0) {
    // Whole values per word (1 and 2 bits).
    const int perWord = 32 / bits;
    const int64_t full = cols / perWord;
    for (int64_t wi = 0; wi < full; ++wi) {
      uint32_t word = 0;
      for (int k = 0; k < perWord; ++k) word |= ((static_cast<uint32_t>(codes[wi * perWord + k]) + offset) & valueMask) << (k * bits);
      words[wi] = word;
    }
    if (full < wordCount) {
      uint32_t word = 0;
      for (int64_t c = full * perWord; c < cols; ++c) word |= ((static_cast<uint32_t>(codes[c]) + offset) & valueMask) << ((c - full * perWord) * bits);
      words[full] = word;
    }
    return;
  }
  for (int64_t wi = 0; wi < wordCount; ++wi) words[wi] = 0;
  for (int64_t c = 0; c < cols; ++c) {
    const uint64_t value = (static_cast<uint32_t>(codes[c]) + offset) & valueMask;
    const int64_t bit = c * bits;
    const int64_t wi = bit / 32, shift = bit % 32;
    words[wi] |= static_cast<uint32_t>(value << shift);
    if (shift + bits > 32) words[wi + 1] |= static_cast<uint32_t>(value >> (32 - shift));
  }
}

SPARQ_INLINE int8_t codeAt(const uint32_t* words, int64_t c, int bits) {
  const uint32_t offset = 1u << (bits - 1), valueMask = (1u << bits) - 1u;
  const int64_t bit = c * bits;
  const int64_t wi = bit / 32, shift = bit % 32;
  uint64_t pair = words[wi];
  if (shift + bits > 32) pair |= static_cast<uint64_t>(words[wi + 1]) << 32;
  return static_cast<int8_t>(static_cast<int32_t>((pair >> shift) & valueMask) - static_cast<int32_t>(offset));
}

SPARQ_INLINE void unpackRowBody(const uint32_t* words, int bits, int8_t* codes, int64_t cols) {
  const int32_t offset = 1 << (bits - 1);
  const uint32_t valueMask = (1u << bits) - 1u;
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(words);
  if (bits == 8) {
    for (int64_t i = 0; i < cols; ++i) codes[i] = static_cast<int8_t>(bytes[i] - 128);
    return;
  }
  if (bits == 4) {
    const int64_t pairs = cols / 2;
    for (int64_t i = 0; i < pairs; ++i) {
      codes[2 * i] = static_cast<int8_t>((bytes[i] & 15) - 8);
      codes[2 * i + 1] = static_cast<int8_t>((bytes[i] >> 4) - 8);
    }
    if (cols % 2) codes[cols - 1] = static_cast<int8_t>((bytes[pairs] & 15) - 8);
    return;
  }
  if (32 % bits == 0) {
    const int perWord = 32 / bits;
    const int64_t full = cols / perWord;
    for (int64_t wi = 0; wi < full; ++wi) {
      const uint32_t word = words[wi];
      for (int k = 0; k < perWord; ++k) codes[wi * perWord + k] = static_cast<int8_t>(static_cast<int32_t>((word >> (k * bits)) & valueMask) - offset);
    }
    for (int64_t c = full * perWord; c < cols; ++c) codes[c] = codeAt(words, c, bits);
    return;
  }
  for (int64_t c = 0; c < cols; ++c) codes[c] = codeAt(words, c, bits);
}

// Unpack and decode in one pass: out = (code − zero)·scale of the column's group. With contiguous groups
// of an even size, 4- and 8-bit codes decode group by group with the group's scale and zero in registers.
SPARQ_INLINE void dequantizeRowBody(const uint32_t* words, int bits, const float* scales, const int8_t* zeros,
                                   const int32_t* groupOf, int64_t groupSize, float* out, int64_t cols) {
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(words);
  if (!groupOf && (bits == 8 || (bits == 4 && groupSize % 2 == 0))) {
    for (int64_t start = 0; start < cols; start += groupSize) {
      const int64_t g = start / groupSize, end = std::min(cols, start + groupSize);
      const float scale = scales[g];
      const float shift = static_cast<float>(1 << (bits - 1)) + (zeros ? static_cast<float>(zeros[g]) : 0.0f);
      if (bits == 8) {
        for (int64_t c = start; c < end; ++c) out[c] = (static_cast<float>(bytes[c]) - shift) * scale + 0.0f;
      } else {
        const int64_t pairs = (end - start) / 2;
        const uint8_t* in = bytes + start / 2;
        float* o = out + start;
        for (int64_t i = 0; i < pairs; ++i) {
          o[2 * i] = (static_cast<float>(in[i] & 15) - shift) * scale + 0.0f;
          o[2 * i + 1] = (static_cast<float>(in[i] >> 4) - shift) * scale + 0.0f;
        }
        if ((end - start) % 2) o[end - start - 1] = (static_cast<float>(in[pairs] & 15) - shift) * scale + 0.0f;
      }
    }
    return;
  }
  for (int64_t c = 0; c < cols; ++c) {
    const int64_t g = groupOf ? groupOf[c] : c / groupSize;
    out[c] = dequantizeValue(static_cast<float>(codeAt(words, c, bits)), zeros ? static_cast<float>(zeros[g]) : 0.0f, scales[g]);
  }
}

using PackRowFn = void (*)(const int8_t*, int64_t, int, uint32_t*, int64_t);
using UnpackRowFn = void (*)(const uint32_t*, int, int8_t*, int64_t);
using DequantizeRowFn = void (*)(const uint32_t*, int, const float*, const int8_t*, const int32_t*, int64_t, float*, int64_t);

void packRowGeneric(const int8_t* c, int64_t n, int b, uint32_t* w, int64_t wc) { packRowBody(c, n, b, w, wc); }
SPARQ_TARGET_AVX2 void packRowAvx2(const int8_t* c, int64_t n, int b, uint32_t* w, int64_t wc) { packRowBody(c, n, b, w, wc); }
SPARQ_TARGET_AVX512 void packRowAvx512(const int8_t* c, int64_t n, int b, uint32_t* w, int64_t wc) { packRowBody(c, n, b, w, wc); }
void unpackRowGeneric(const uint32_t* w, int b, int8_t* c, int64_t n) { unpackRowBody(w, b, c, n); }
SPARQ_TARGET_AVX2 void unpackRowAvx2(const uint32_t* w, int b, int8_t* c, int64_t n) { unpackRowBody(w, b, c, n); }
SPARQ_TARGET_AVX512 void unpackRowAvx512(const uint32_t* w, int b, int8_t* c, int64_t n) { unpackRowBody(w, b, c, n); }
void dequantizeRowGeneric(const uint32_t* w, int b, const float* s, const int8_t* z, const int32_t* g, int64_t gs, float* o, int64_t n) {
  dequantizeRowBody(w, b, s, z, g, gs, o, n);
}
SPARQ_TARGET_AVX2 void dequantizeRowAvx2(const uint32_t* w, int b, const float* s, const int8_t* z, const int32_t* g, int64_t gs,
                                         float* o, int64_t n) {
  dequantizeRowBody(w, b, s, z, g, gs, o, n);
}
SPARQ_TARGET_AVX512 void dequantizeRowAvx512(const uint32_t* w, int b, const float* s, const int8_t* z, const int32_t* g,
                                             int64_t gs, float* o, int64_t n) {
  dequantizeRowBody(w, b, s, z, g, gs, o, n);
}

}  // namespace

void quantizeRtn(const TensorView& w, const QuantGrid& grid, const TensorView& groupOf, TensorView& codes, TensorView& scales,
                 TensorView& zeros, TensorView& out) {
  const int64_t rows = w.shape[0], cols = w.shape[1], groups = groupCount(scales);
  checkGroupOf(groupOf, groups, "quantizeRtn");
  const RtnRowFn rtnRow = pickKernel(rtnRowGeneric, rtnRowAvx2, rtnRowAvx512);
  const int32_t* groupIndex = groupOf.numel() > 0 ? groupOf.as<const int32_t>() : nullptr;
  ThreadPool::instance().parallelFor(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)), [&](int64_t begin, int64_t end) {
    std::vector<float> lo(static_cast<size_t>(groups)), hi(static_cast<size_t>(groups));
    for (int64_t r = begin; r < end; ++r) {
      throwIfCancelled();
      rtnRow(w.as<const float>() + r * cols, cols, grid, groupIndex, groups, lo.data(), hi.data(), codes.as<int8_t>() + r * cols,
             scales.as<float>() + r * groups, zeros.as<int8_t>() + r * groups, out.as<float>() + r * cols);
    }
  });
}

void packCodes(const TensorView& codes, int bits, TensorView& packed) {
  const int64_t rows = codes.shape[0], cols = codes.shape[1], words = packed.shape[1];
  const PackRowFn packRow = pickKernel(packRowGeneric, packRowAvx2, packRowAvx512);
  ThreadPool::instance().parallelFor(rows, std::max<int64_t>(1, 65536 / std::max<int64_t>(cols, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      packRow(codes.as<const int8_t>() + r * cols, cols, bits, reinterpret_cast<uint32_t*>(packed.as<int32_t>()) + r * words, words);
    }
  });
}

void unpackCodes(const TensorView& packed, int bits, TensorView& codes) {
  const int64_t rows = codes.shape[0], cols = codes.shape[1], words = packed.shape[1];
  const UnpackRowFn unpackRow = pickKernel(unpackRowGeneric, unpackRowAvx2, unpackRowAvx512);
  ThreadPool::instance().parallelFor(rows, std::max<int64_t>(1, 65536 / std::max<int64_t>(cols, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      unpackRow(reinterpret_cast<const uint32_t*>(packed.as<const int32_t>()) + r * words, bits, codes.as<int8_t>() + r * cols, cols);
    }
  });
}

void dequantizePacked(const TensorView& packed, int bits, const TensorView& scales, const TensorView& zeros,
                      const TensorView& groupOf, int64_t groupSize, TensorView& out) {
  const int64_t rows = out.shape[0], cols = out.shape[1], words = packed.shape[1], groups = groupCount(scales);
  checkGroupOf(groupOf, groups, "dequantizePacked");
  const DequantizeRowFn dequantizeRow = pickKernel(dequantizeRowGeneric, dequantizeRowAvx2, dequantizeRowAvx512);
  const int32_t* groupIndex = groupOf.numel() > 0 ? groupOf.as<const int32_t>() : nullptr;
  ThreadPool::instance().parallelFor(rows, std::max<int64_t>(1, 65536 / std::max<int64_t>(cols, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      dequantizeRow(reinterpret_cast<const uint32_t*>(packed.as<const int32_t>()) + r * words, bits, scales.as<const float>() + r * groups,
                    zeros.numel() > 0 ? zeros.as<const int8_t>() + r * groups : nullptr, groupIndex, groupSize, out.as<float>() + r * cols,
                    cols);
    }
  });
}

}  // namespace sparq::cpu

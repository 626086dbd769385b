// sparq's packed weight formats, shared by every backend. A linear layer's weight W is [N, K] (outputs,
// inputs) as in PyTorch; the packed ops compute y[T, N] = x[T, K]·Wᵀ (+ bias) from the packed form.
//
// int4     packed i32 [N, ceil(K/8)]: code + 8 at bit 4·i of a row's words (compressed-tensors'
//          pack-quantized layout, core/quant.h's packCodes); scales f32/f16/bf16 [N, G] and optional
//          zero points i8 [N, G] for groups of groupSize inputs: w = (code − zero)·scale.
// 2:4      Each group of 4 inputs keeps 2 (a tail group past K keeps 2 slots too, zero-valued beyond K).
//          values [N, 2·ceil(K/4)] (f32/f16/bf16): the kept values in input order; meta i32
//          [N, ceil(values/16)]: kept value j's position in its group (0..3) at bits 2·(j mod 16) of
//          word j/16, the two positions of a group strictly increasing.
// 2:4+int4 The kept values of 2:4 as int4 codes (packed as int4, 8 per word, over the kept values),
//          the same meta, symmetric scales [N, G] over groups of groupSize *inputs* (a multiple of 4).
// BSR      Blocks of b = 1, 8, 16 or 32 consecutive inputs of a row (b = 1 is CSR, for outliers):
//          rowPtr i32 [N + 1] (rowPtr[0] = 0, non-decreasing, rowPtr[N] = blocks), blockCols i32
//          [blocks] (strictly increasing within a row, each < ceil(K/b)); values f32/f16/bf16
//          [blocks, b], or int4 packed i32 [blocks, b/8] with one symmetric scale per block. Inputs of a
//          tail block beyond K must be zero.
#pragma once
#include <cstdint>

#include "tensor.h"

namespace sparq {

inline int64_t int4Words(int64_t values) { return (values + 7) / 8; }
inline int64_t sparse24Groups(int64_t k) { return (k + 3) / 4; }
inline int64_t sparse24Kept(int64_t k) { return 2 * sparse24Groups(k); }
inline int64_t sparse24MetaWords(int64_t k) { return (sparse24Kept(k) + 15) / 16; }
inline int64_t blockColumns(int64_t k, int64_t blockSize) { return (k + blockSize - 1) / blockSize; }
inline bool isBsrBlockSize(int64_t b) { return b == 1 || b == 8 || b == 16 || b == 32; }

void checkDenseLinear(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y);
void checkInt4Linear(const TensorView& x, const TensorView& packed, const TensorView& scales, const TensorView& zeros,
                     int64_t groupSize, const TensorView& bias, const TensorView& y);
void checkSparse24Linear(const TensorView& x, const TensorView& values, const TensorView& meta, const TensorView& bias,
                         const TensorView& y);
void checkSparse24Int4Linear(const TensorView& x, const TensorView& packed, const TensorView& meta,
                             const TensorView& scales, int64_t groupSize, const TensorView& bias, const TensorView& y);
void checkBsrLinear(const TensorView& x, const TensorView& rowPtr, const TensorView& blockCols, const TensorView& values,
                    int64_t blockSize, const TensorView& bias, const TensorView& y);
void checkBsrInt4Linear(const TensorView& x, const TensorView& rowPtr, const TensorView& blockCols,
                        const TensorView& packed, const TensorView& blockScales, int64_t blockSize, const TensorView& bias,
                        const TensorView& y);
void checkPack24(const TensorView& w, const TensorView& values, const TensorView& meta);
void checkCountBsrBlocks(const TensorView& w, int64_t blockSize, const TensorView& rowPtr);
void checkBsrTensors(const TensorView& w, int64_t blockSize, const TensorView& rowPtr, const TensorView& blockCols,
                     const TensorView& values, const char* op);

}  // namespace sparq

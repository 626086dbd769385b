// Linear layers on packed weights (core/packed_formats.h): y[T, N] = x[T, K]·Wᵀ (+ bias), and the
// converters between dense weights and the 2:4 and BSR forms. Batch 1 (decode) runs fused AVX-512
// kernels that read the packed bytes once; larger batches decode a few rows at a time into a cache-sized
// tile that a register-blocked kernel multiplies with every token. The scalar variant is the reference.
#pragma once
#include "core/backend.h"

namespace sparq::cpu {

// w [N, K] f32, f16 or bf16: the dense baseline.
void denseLinear(const TensorView& x, const TensorView& w, const TensorView& bias, TensorView& y);
void int4Linear(const TensorView& x, const TensorView& packed, const TensorView& scales, const TensorView& zeros,
                int64_t groupSize, const TensorView& bias, TensorView& y);
void sparse24Linear(const TensorView& x, const TensorView& values, const TensorView& meta, const TensorView& bias,
                    TensorView& y);
void sparse24Int4Linear(const TensorView& x, const TensorView& packed, const TensorView& meta, const TensorView& scales,
                        int64_t groupSize, const TensorView& bias, TensorView& y);
void bsrLinear(const TensorView& x, const TensorView& rowPtr, const TensorView& blockCols, const TensorView& values,
               int64_t blockSize, const TensorView& bias, bool accumulate, TensorView& y);
void bsrInt4Linear(const TensorView& x, const TensorView& rowPtr, const TensorView& blockCols, const TensorView& packed,
                   const TensorView& blockScales, int64_t blockSize, const TensorView& bias, TensorView& y);

void pack24(const TensorView& w, TensorView& values, TensorView& meta);
void unpack24(const TensorView& values, const TensorView& meta, TensorView& w);
void countBsrBlocks(const TensorView& w, int64_t blockSize, TensorView& rowPtr);
void packBsr(const TensorView& w, int64_t blockSize, const TensorView& rowPtr, TensorView& blockCols, TensorView& values);
void unpackBsr(const TensorView& rowPtr, const TensorView& blockCols, const TensorView& values, int64_t blockSize,
               TensorView& w);

}  // namespace sparq::cpu

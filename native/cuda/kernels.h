// Launchers for sparq's own CUDA kernels, callable from plain C++ (cuda_backend.cpp). Every launcher
// runs on the given stream, handles empty inputs, and reports a launch failure as a sparq::Error.
// NaN checks write the flat index of the first NaN into `*firstNaN` (a device int64 that the caller
// sets to INT64_MAX beforehand), so the caller can name the row and column.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/backend.h"

namespace sparq::cuda {

void convert(const void* src, DType from, void* dst, DType to, int64_t count, cudaStream_t stream);

void topkMask(const float* scores, int64_t rows, int64_t cols, int64_t k, bool largest, uint8_t* mask,
              int64_t* firstNaN, cudaStream_t stream);
void nmMask(const float* scores, int64_t rows, int64_t cols, int n, int m, bool largest, uint8_t* mask,
            int64_t* firstNaN, cudaStream_t stream);
void thresholdMask(const float* scores, int64_t count, float threshold, uint8_t* mask, int64_t* firstNaN,
                   cudaStream_t stream);
void applyMask(const void* x, const uint8_t* mask, void* out, int64_t count, size_t elementSize, cudaStream_t stream);

void axpy(double alpha, const void* x, void* y, int64_t count, DType dtype, cudaStream_t stream);
void unary(UnaryOp op, const void* x, void* out, int64_t count, DType dtype, double a, double b, cudaStream_t stream);

// Square n×n row-major matrices (f32 or f64).
void findNonFinite(const void* a, int64_t count, DType dtype, int64_t* firstBad, cudaStream_t stream);
void addToDiagonal(void* a, int64_t n, DType dtype, double lambda, cudaStream_t stream);
// c = beta·c over `count` elements, or over the lower triangle of n×n c (beta = 0 writes zeros, even over NaN).
void scaleMatrix(void* c, int64_t count, DType dtype, double beta, cudaStream_t stream);
void scaleLower(void* c, int64_t n, DType dtype, double beta, cudaStream_t stream);
// Lower triangle onto the upper one.
void mirrorLower(void* a, int64_t n, DType dtype, cudaStream_t stream);
// Keeps the lower triangle (zeroing the upper), or moves it to the upper one (U = Lᵀ, lower zeroed).
void finishFactor(void* a, int64_t n, DType dtype, bool upper, cudaStream_t stream);

// ---- packed-weight linears (packed.cu): y[T, N] = x[T, K]·Wᵀ (+ bias), W in a core/packed_formats.h format.
// x, y and bias are f32; bias may be null; accumulate adds onto y (bsrLinear's outliers). Shapes were checked
// by the op; data that contradicts its format is recorded in `flag` (see failCorruptPacked).
struct LinearArgs {
  const float* x;
  float* y;
  const float* bias;
  int64_t tokens, k, n;
  bool accumulate;
};

void denseLinear(const LinearArgs& a, const void* w, DType wType, cudaStream_t stream);
void int4Linear(const LinearArgs& a, const int32_t* packed, const void* scales, DType scaleType, const int8_t* zeros,
                int64_t groupSize, cudaStream_t stream);
void sparse24Linear(const LinearArgs& a, const void* values, DType valueType, const int32_t* meta, int64_t* flag,
                    cudaStream_t stream);
void sparse24Int4Linear(const LinearArgs& a, const int32_t* packed, const int32_t* meta, const void* scales,
                        DType scaleType, int64_t groupSize, int64_t* flag, cudaStream_t stream);
void bsrLinear(const LinearArgs& a, const int32_t* rowPtr, const int32_t* blockCols, int64_t blocks, const void* values,
               DType valueType, int64_t blockSize, int64_t* flag, cudaStream_t stream);
void bsrInt4Linear(const LinearArgs& a, const int32_t* rowPtr, const int32_t* blockCols, int64_t blocks,
                   const int32_t* packed, const void* blockScales, DType scaleType, int64_t blockSize, int64_t* flag,
                   cudaStream_t stream);

// The index tensors of a packed weight whose linear flagged corrupt data: 2:4 (meta) or BSR (rowPtr, blockCols).
struct PackedIndex {
  int64_t rows = 0;
  const int32_t* meta = nullptr;
  int64_t metaWords = 0;
  const char* keptName = "value";  // "code" for 2:4+int4
  const int32_t* rowPtr = nullptr;
  const int32_t* blockCols = nullptr;
  int64_t blocks = 0, blockColumns = 0;
};
// Throws the InvalidFile error the CPU backend gives for the same data, reading back the words it names.
[[noreturn]] void failCorruptPacked(const char* op, int64_t flag, const PackedIndex& index, cudaStream_t stream);

// Throws sparq::Error(Internal) naming `what` if the last launch failed.
void checkLaunch(const char* what);

}  // namespace sparq::cuda

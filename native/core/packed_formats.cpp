// Argument checks of the packed-format ops (packed_formats.h). Shapes and dtypes always; the BSR row
// pointers too when they live in host memory (O(N), cheap): kernels trust them to bound their loops.
// Per-block and per-group contents are checked by the kernels, which never read outside x or W.
#include "packed_formats.h"

#include <string>

namespace sparq {

namespace {

std::string describe(const char* name, const TensorView& t) {
  return std::string(name) + " " + dtypeName(t.dtype) + t.shapeString();
}

void requireShape(const TensorView& t, const char* name, int64_t rows, int64_t cols, const char* op) {
  SPARQ_CHECK(t.ndim == 2 && t.shape[0] == rows && t.shape[1] == cols, ErrorCode::ShapeMismatch,
              std::string(op) + ": " + name + " must be [" + std::to_string(rows) + ", " + std::to_string(cols) +
                  "], got " + t.shapeString());
}

void requireVector(const TensorView& t, const char* name, int64_t length, const char* op) {
  SPARQ_CHECK(t.ndim == 1 && t.shape[0] == length, ErrorCode::ShapeMismatch,
              std::string(op) + ": " + name + " must be [" + std::to_string(length) + "], got " + t.shapeString());
}

void requireDType(const TensorView& t, const char* name, DType expected, const char* op) {
  SPARQ_CHECK(t.dtype == expected, ErrorCode::DTypeMismatch,
              std::string(op) + ": " + name + " must be " + dtypeName(expected) + ", got " + dtypeName(t.dtype));
}

bool isFloatStorage(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

void requireFloatStorage(const TensorView& t, const char* name, const char* op) {
  SPARQ_CHECK(isFloatStorage(t.dtype), ErrorCode::DTypeMismatch,
              std::string(op) + ": " + name + " must be f32, f16 or bf16, got " + dtypeName(t.dtype));
}

void requireSameDevice(const TensorView& reference, const TensorView& t, const char* name, const char* op) {
  SPARQ_CHECK(t.numel() == 0 || t.device == reference.device, ErrorCode::DeviceMismatch,
              std::string(op) + ": " + name + " is on " + deviceName(t.device) + " but x is on " +
                  deviceName(reference.device));
}

// x [T, K] f32, y [T, N] f32, bias empty or [N] f32, all on one device; returns K.
int64_t checkActivations(const TensorView& x, int64_t n, const TensorView& bias, const TensorView& y, const char* op) {
  SPARQ_CHECK(x.ndim == 2, ErrorCode::ShapeMismatch, std::string(op) + ": x must be [tokens, inputs], got " + x.shapeString());
  requireDType(x, "x", DType::F32, op);
  requireShape(y, "y", x.shape[0], n, op);
  requireDType(y, "y", DType::F32, op);
  requireSameDevice(x, y, "y", op);
  if (bias.numel() > 0) {  // an empty tensor means no bias
    requireVector(bias, "bias", n, op);
    requireDType(bias, "bias", DType::F32, op);
    requireSameDevice(x, bias, "bias", op);
  }
  return x.shape[1];
}

void checkGroupSize(int64_t groupSize, int64_t multiple, const char* op) {
  SPARQ_CHECK(groupSize >= 1 && groupSize % multiple == 0, ErrorCode::InvalidArgument,
              std::string(op) + ": groupSize must be a positive multiple of " + std::to_string(multiple) + ", got " +
                  std::to_string(groupSize));
}

void checkRowPointers(const TensorView& rowPtr, int64_t n, int64_t blocks, const char* op) {
  requireVector(rowPtr, "rowPtr", n + 1, op);
  requireDType(rowPtr, "rowPtr", DType::I32, op);
  if (rowPtr.device != Device::CPU) return;  // device kernels check their own
  const int32_t* p = rowPtr.as<int32_t>();
  SPARQ_CHECK(p[0] == 0, ErrorCode::InvalidFile, std::string(op) + ": rowPtr[0] must be 0, got " + std::to_string(p[0]));
  for (int64_t r = 0; r < n; ++r) {
    SPARQ_CHECK(p[r + 1] >= p[r], ErrorCode::InvalidFile,
                std::string(op) + ": rowPtr decreases at row " + std::to_string(r) + " (" + std::to_string(p[r]) + " then " +
                    std::to_string(p[r + 1]) + ")");
  }
  SPARQ_CHECK(p[n] == blocks, ErrorCode::InvalidFile,
              std::string(op) + ": rowPtr ends at " + std::to_string(p[n]) + " but there are " + std::to_string(blocks) +
                  " blocks");
}

void checkBsrIndex(const TensorView& x, const TensorView& rowPtr, const TensorView& blockCols, int64_t blockSize,
                   int64_t n, const char* op) {
  SPARQ_CHECK(isBsrBlockSize(blockSize), ErrorCode::InvalidArgument,
              std::string(op) + ": blockSize must be 1, 8, 16 or 32, got " + std::to_string(blockSize));
  SPARQ_CHECK(blockCols.ndim == 1, ErrorCode::ShapeMismatch,
              std::string(op) + ": blockCols must be a vector, got " + blockCols.shapeString());
  requireDType(blockCols, "blockCols", DType::I32, op);
  requireSameDevice(x, rowPtr, "rowPtr", op);
  requireSameDevice(x, blockCols, "blockCols", op);
  checkRowPointers(rowPtr, n, blockCols.shape[0], op);
}

// The activations and the block index of a BSR linear; the outputs N come from rowPtr [N + 1].
void checkBsrLinearIndex(const TensorView& x, const TensorView& rowPtr, const TensorView& blockCols, int64_t blockSize,
                         const TensorView& bias, const TensorView& y, const char* op) {
  SPARQ_CHECK(rowPtr.ndim == 1 && rowPtr.shape[0] >= 1, ErrorCode::ShapeMismatch,
              std::string(op) + ": rowPtr must be [outputs + 1], got " + rowPtr.shapeString());
  const int64_t n = rowPtr.shape[0] - 1;
  checkActivations(x, n, bias, y, op);
  checkBsrIndex(x, rowPtr, blockCols, blockSize, n, op);
}

}  // namespace

void checkDenseLinear(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y) {
  const char* op = "denseLinear";
  SPARQ_CHECK(w.ndim == 2, ErrorCode::ShapeMismatch, std::string(op) + ": w must be [outputs, inputs], got " + w.shapeString());
  const int64_t k = checkActivations(x, w.shape[0], bias, y, op);
  requireShape(w, "w", w.shape[0], k, op);
  requireFloatStorage(w, "w", op);
  requireSameDevice(x, w, "w", op);
}

void checkInt4Linear(const TensorView& x, const TensorView& packed, const TensorView& scales, const TensorView& zeros,
                     int64_t groupSize, const TensorView& bias, const TensorView& y) {
  const char* op = "int4Linear";
  SPARQ_CHECK(packed.ndim == 2, ErrorCode::ShapeMismatch, std::string(op) + ": packed must be [outputs, words], got " + packed.shapeString());
  const int64_t n = packed.shape[0];
  const int64_t k = checkActivations(x, n, bias, y, op);
  requireShape(packed, "packed", n, int4Words(k), op);
  requireDType(packed, "packed", DType::I32, op);
  checkGroupSize(groupSize, 1, op);
  const int64_t groups = (k + groupSize - 1) / groupSize;
  requireShape(scales, "scales", n, groups, op);
  requireFloatStorage(scales, "scales", op);
  if (zeros.numel() > 0) {  // an empty tensor means symmetric
    requireShape(zeros, "zeros", n, groups, op);
    requireDType(zeros, "zeros", DType::I8, op);
    requireSameDevice(x, zeros, "zeros", op);
  }
  requireSameDevice(x, packed, "packed", op);
  requireSameDevice(x, scales, "scales", op);
}

void checkSparse24Linear(const TensorView& x, const TensorView& values, const TensorView& meta, const TensorView& bias,
                         const TensorView& y) {
  const char* op = "sparse24Linear";
  SPARQ_CHECK(values.ndim == 2, ErrorCode::ShapeMismatch, std::string(op) + ": values must be [outputs, kept], got " + values.shapeString());
  const int64_t n = values.shape[0];
  const int64_t k = checkActivations(x, n, bias, y, op);
  requireShape(values, "values", n, sparse24Kept(k), op);
  requireFloatStorage(values, "values", op);
  requireShape(meta, "meta", n, sparse24MetaWords(k), op);
  requireDType(meta, "meta", DType::I32, op);
  requireSameDevice(x, values, "values", op);
  requireSameDevice(x, meta, "meta", op);
}

void checkSparse24Int4Linear(const TensorView& x, const TensorView& packed, const TensorView& meta,
                             const TensorView& scales, int64_t groupSize, const TensorView& bias, const TensorView& y) {
  const char* op = "sparse24Int4Linear";
  SPARQ_CHECK(packed.ndim == 2, ErrorCode::ShapeMismatch, std::string(op) + ": packed must be [outputs, words], got " + packed.shapeString());
  const int64_t n = packed.shape[0];
  const int64_t k = checkActivations(x, n, bias, y, op);
  requireShape(packed, "packed", n, int4Words(sparse24Kept(k)), op);
  requireDType(packed, "packed", DType::I32, op);
  requireShape(meta, "meta", n, sparse24MetaWords(k), op);
  requireDType(meta, "meta", DType::I32, op);
  checkGroupSize(groupSize, 4, op);
  requireShape(scales, "scales", n, (k + groupSize - 1) / groupSize, op);
  requireFloatStorage(scales, "scales", op);
  requireSameDevice(x, packed, "packed", op);
  requireSameDevice(x, meta, "meta", op);
  requireSameDevice(x, scales, "scales", op);
}

void checkBsrLinear(const TensorView& x, const TensorView& rowPtr, const TensorView& blockCols, const TensorView& values,
                    int64_t blockSize, const TensorView& bias, const TensorView& y) {
  const char* op = "bsrLinear";
  checkBsrLinearIndex(x, rowPtr, blockCols, blockSize, bias, y, op);
  requireShape(values, "values", blockCols.shape[0], blockSize, op);
  requireFloatStorage(values, "values", op);
  requireSameDevice(x, values, "values", op);
}

void checkBsrInt4Linear(const TensorView& x, const TensorView& rowPtr, const TensorView& blockCols,
                        const TensorView& packed, const TensorView& blockScales, int64_t blockSize, const TensorView& bias,
                        const TensorView& y) {
  const char* op = "bsrInt4Linear";
  checkBsrLinearIndex(x, rowPtr, blockCols, blockSize, bias, y, op);
  SPARQ_CHECK(blockSize >= 8, ErrorCode::InvalidArgument, std::string(op) + ": int4 blocks hold 8, 16 or 32 inputs, got " + std::to_string(blockSize));
  requireShape(packed, "packed", blockCols.shape[0], blockSize / 8, op);
  requireDType(packed, "packed", DType::I32, op);
  requireVector(blockScales, "blockScales", blockCols.shape[0], op);
  requireFloatStorage(blockScales, "blockScales", op);
  requireSameDevice(x, packed, "packed", op);
  requireSameDevice(x, blockScales, "blockScales", op);
}

void checkPack24(const TensorView& w, const TensorView& values, const TensorView& meta) {
  const char* op = "pack24";
  SPARQ_CHECK(w.ndim == 2, ErrorCode::ShapeMismatch, std::string(op) + ": w must be [outputs, inputs], got " + w.shapeString());
  SPARQ_CHECK(isFloatStorage(w.dtype) || w.dtype == DType::I8, ErrorCode::DTypeMismatch,
              std::string(op) + ": w must be f32, f16, bf16 or i8 codes, got " + dtypeName(w.dtype));
  requireShape(values, "values", w.shape[0], sparse24Kept(w.shape[1]), op);
  SPARQ_CHECK(values.dtype == w.dtype, ErrorCode::DTypeMismatch,
              std::string(op) + ": values must have w's dtype " + dtypeName(w.dtype) + ", got " + describe("values", values));
  requireShape(meta, "meta", w.shape[0], sparse24MetaWords(w.shape[1]), op);
  requireDType(meta, "meta", DType::I32, op);
  requireSameDevice(w, values, "values", op);
  requireSameDevice(w, meta, "meta", op);
}

void checkCountBsrBlocks(const TensorView& w, int64_t blockSize, const TensorView& rowPtr) {
  const char* op = "countBsrBlocks";
  SPARQ_CHECK(w.ndim == 2, ErrorCode::ShapeMismatch, std::string(op) + ": w must be [outputs, inputs], got " + w.shapeString());
  SPARQ_CHECK(isFloatStorage(w.dtype) || w.dtype == DType::I8, ErrorCode::DTypeMismatch,
              std::string(op) + ": w must be f32, f16, bf16 or i8 codes, got " + dtypeName(w.dtype));
  SPARQ_CHECK(isBsrBlockSize(blockSize), ErrorCode::InvalidArgument,
              std::string(op) + ": blockSize must be 1, 8, 16 or 32, got " + std::to_string(blockSize));
  requireVector(rowPtr, "rowPtr", w.shape[0] + 1, op);
  requireDType(rowPtr, "rowPtr", DType::I32, op);
  requireSameDevice(w, rowPtr, "rowPtr", op);
}

void checkBsrTensors(const TensorView& w, int64_t blockSize, const TensorView& rowPtr, const TensorView& blockCols,
                     const TensorView& values, const char* op) {
  SPARQ_CHECK(w.ndim == 2, ErrorCode::ShapeMismatch, std::string(op) + ": w must be [outputs, inputs], got " + w.shapeString());
  SPARQ_CHECK(isFloatStorage(w.dtype) || w.dtype == DType::I8, ErrorCode::DTypeMismatch,
              std::string(op) + ": w must be f32, f16, bf16 or i8 codes, got " + dtypeName(w.dtype));
  checkBsrIndex(w, rowPtr, blockCols, blockSize, w.shape[0], op);
  requireShape(values, "values", blockCols.shape[0], blockSize, op);
  SPARQ_CHECK(values.dtype == w.dtype, ErrorCode::DTypeMismatch,
              std::string(op) + ": values must have w's dtype " + dtypeName(w.dtype) + ", got " + describe("values", values));
  requireSameDevice(w, values, "values", op);
}

}  // namespace sparq

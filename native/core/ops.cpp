#include "ops.h"

#include <cmath>
#include <string>
#include <utility>

namespace sparq {

namespace {

std::string describe(const char* name, const TensorView& t) {
  return std::string(name) + " " + dtypeName(t.dtype) + t.shapeString();
}

void requireSameDevice(const TensorView& a, const TensorView& b, const char* an, const char* bn) {
  SPARQ_CHECK(a.device == b.device, ErrorCode::DeviceMismatch,
          std::string(an) + " is on " + deviceName(a.device) + " but " + bn + " is on " + deviceName(b.device));
}

void requireDType(const TensorView& t, const char* name, DType expected) {
  SPARQ_CHECK(t.dtype == expected, ErrorCode::DTypeMismatch,
          std::string(name) + ": expected dtype " + dtypeName(expected) + ", got " + dtypeName(t.dtype));
}

void requireSameDType(const TensorView& a, const TensorView& b, const char* an, const char* bn) {
  SPARQ_CHECK(a.dtype == b.dtype, ErrorCode::DTypeMismatch,
          std::string(bn) + ": expected dtype " + dtypeName(a.dtype) + " (the dtype of " + an + "), got " +
              dtypeName(b.dtype));
}

void requireMatrix(const TensorView& t, const char* name) {
  SPARQ_CHECK(t.ndim == 2, ErrorCode::ShapeMismatch,
          std::string(name) + ": expected a 2-D matrix, got shape " + t.shapeString());
}

void requireBlasFloat(const TensorView& t, const char* name) {
  SPARQ_CHECK(t.dtype == DType::F32 || t.dtype == DType::F64, ErrorCode::DTypeMismatch,
          std::string(name) + ": expected dtype f32 or f64, got " + dtypeName(t.dtype));
}

void requireSameNumel(const TensorView& a, const TensorView& b, const char* an, const char* bn) {
  SPARQ_CHECK(a.numel() == b.numel(), ErrorCode::ShapeMismatch,
          describe(bn, b) + " must have as many elements as " + describe(an, a));
}

}  // namespace

void checkGemm(const TensorView& a, bool transA, const TensorView& b, bool transB, const TensorView& c) {
  requireMatrix(a, "a");
  requireMatrix(b, "b");
  requireMatrix(c, "c");
  requireBlasFloat(a, "a");
  requireSameDType(a, b, "a", "b");
  requireSameDType(a, c, "a", "c");
  requireSameDevice(a, b, "a", "b");
  requireSameDevice(a, c, "a", "c");
  const int64_t m = transA ? a.shape[1] : a.shape[0];
  const int64_t k = transA ? a.shape[0] : a.shape[1];
  const int64_t kb = transB ? b.shape[1] : b.shape[0];
  const int64_t n = transB ? b.shape[0] : b.shape[1];
  SPARQ_CHECK(k == kb, ErrorCode::ShapeMismatch,
          "gemm: inner dimensions differ: op(a) is " + std::to_string(m) + "x" + std::to_string(k) + ", op(b) is " +
              std::to_string(kb) + "x" + std::to_string(n));
  SPARQ_CHECK(c.shape[0] == m && c.shape[1] == n, ErrorCode::ShapeMismatch,
          "gemm: c must be " + std::to_string(m) + "x" + std::to_string(n) + ", got " + c.shapeString());
}

void checkSyrk(const TensorView& x, const TensorView& c) {
  requireMatrix(x, "x");
  requireMatrix(c, "c");
  requireBlasFloat(x, "x");
  requireSameDType(x, c, "x", "c");
  requireSameDevice(x, c, "x", "c");
  SPARQ_CHECK(c.shape[0] == x.shape[1] && c.shape[1] == x.shape[1], ErrorCode::ShapeMismatch,
          "syrk: c must be " + std::to_string(x.shape[1]) + "x" + std::to_string(x.shape[1]) + " for x " +
              x.shapeString() + ", got " + c.shapeString());
}

void checkCholesky(const TensorView& a, const TensorView& out, const CholeskyOptions& options) {
  requireMatrix(a, "a");
  requireBlasFloat(a, "a");
  SPARQ_CHECK(a.shape[0] == a.shape[1], ErrorCode::ShapeMismatch, "cholesky: a must be square, got " + a.shapeString());
  requireSameDType(a, out, "a", "out");
  requireSameDevice(a, out, "a", "out");
  SPARQ_CHECK(out.ndim == 2 && out.shape[0] == a.shape[0] && out.shape[1] == a.shape[1], ErrorCode::ShapeMismatch,
          "cholesky: out must have a's shape " + a.shapeString() + ", got " + out.shapeString());
  SPARQ_CHECK(options.damp >= 0 && options.damp == options.damp, ErrorCode::InvalidArgument,
          "cholesky: damp must be a finite number >= 0, got " + std::to_string(options.damp));
  SPARQ_CHECK(options.maxAttempts >= 1 && options.maxAttempts <= 32, ErrorCode::InvalidArgument,
          "cholesky: maxAttempts must be in 1..32, got " + std::to_string(options.maxAttempts));
}

void checkTrsm(const TensorView& t, const TensorView& b, bool left) {
  requireMatrix(t, "t");
  requireMatrix(b, "b");
  requireBlasFloat(t, "t");
  requireSameDType(t, b, "t", "b");
  requireSameDevice(t, b, "t", "b");
  SPARQ_CHECK(t.shape[0] == t.shape[1], ErrorCode::ShapeMismatch, "trsm: t must be square, got " + t.shapeString());
  const int64_t needed = left ? b.shape[0] : b.shape[1];
  SPARQ_CHECK(needed == t.shape[0], ErrorCode::ShapeMismatch,
          std::string("trsm: b's ") + (left ? "row" : "column") + " count must equal t's size " +
              std::to_string(t.shape[0]) + ", got b " + b.shapeString());
}

void checkConvert(const TensorView& src, const TensorView& dst) {
  requireSameDevice(src, dst, "src", "dst");
  requireSameNumel(src, dst, "src", "dst");
  SPARQ_CHECK(isFloating(dst.dtype) || dst.dtype == src.dtype, ErrorCode::DTypeMismatch,
          std::string("convert: dst must be a float dtype (f32, f64, f16, bf16) unless it equals src's, got ") +
              dtypeName(dst.dtype) + " from " + dtypeName(src.dtype));
}

void checkTopkMask(const TensorView& scores, int64_t k, const TensorView& mask) {
  requireMatrix(scores, "scores");
  requireDType(scores, "scores", DType::F32);
  requireDType(mask, "mask", DType::U8);
  requireSameDevice(scores, mask, "scores", "mask");
  requireSameNumel(scores, mask, "scores", "mask");
  SPARQ_CHECK(k >= 0 && k <= scores.shape[1], ErrorCode::InvalidArgument,
          "topkMask: k must be in 0.." + std::to_string(scores.shape[1]) + " (the row length), got " +
              std::to_string(k));
}

void checkEigh(const TensorView& a, const TensorView& values, const TensorView& vectors) {
  requireMatrix(a, "a");
  requireDType(a, "a", DType::F64);
  requireDType(values, "values", DType::F64);
  requireDType(vectors, "vectors", DType::F64);
  requireSameDevice(a, values, "a", "values");
  requireSameDevice(a, vectors, "a", "vectors");
  SPARQ_CHECK(a.shape[0] == a.shape[1], ErrorCode::ShapeMismatch, "eigh: a must be square, got " + a.shapeString());
  SPARQ_CHECK(a.shape[0] <= 46340, ErrorCode::InvalidArgument, "eigh: n = " + std::to_string(a.shape[0]) + " exceeds the LAPACK index range");
  requireSameNumel(a, vectors, "a", "vectors");
  SPARQ_CHECK(values.numel() == a.shape[0], ErrorCode::ShapeMismatch,
              "eigh: values must have " + std::to_string(a.shape[0]) + " entries, got " + values.shapeString());
}

void checkMaskedCg(const TensorView& h, const TensorView& g, const TensorView& mask, const TensorView& x,
                   const MaskedCgOptions& options) {
  requireMatrix(h, "h");
  requireMatrix(x, "x");
  requireDType(h, "h", DType::F32);
  requireDType(g, "g", DType::F32);
  requireDType(x, "x", DType::F32);
  requireDType(mask, "mask", DType::U8);
  requireSameDevice(h, x, "h", "x");
  requireSameDevice(g, x, "g", "x");
  requireSameDevice(mask, x, "mask", "x");
  SPARQ_CHECK(h.shape[0] == x.shape[1] && h.shape[1] == x.shape[1], ErrorCode::ShapeMismatch,
              "maskedCg: h must be [" + std::to_string(x.shape[1]) + ", " + std::to_string(x.shape[1]) + "] for x " +
                  x.shapeString() + ", got " + h.shapeString());
  requireSameNumel(g, x, "g", "x");
  requireSameNumel(mask, x, "mask", "x");
  SPARQ_CHECK(options.maxIterations >= 0, ErrorCode::InvalidArgument, "maskedCg: maxIterations must be >= 0");
  SPARQ_CHECK(options.rtol >= 0, ErrorCode::InvalidArgument, "maskedCg: rtol must be >= 0");
}

void checkAlpsAdmmStep(const TensorView& g, const TensorView& inverse, const TensorView& factors, const TensorView& back,
                       double rho, int64_t kept, int n, int m, const TensorView& v, const TensorView& z,
                       const TensorView& b, const TensorView& work, const TensorView& support,
                       const TensorView& previous) {
  requireMatrix(g, "g");
  for (const auto& [t, name] : {std::pair{&g, "g"}, {&inverse, "inverse"}, {&factors, "factors"}, {&back, "back"},
                                 {&v, "v"}, {&z, "z"}, {&b, "b"}, {&work, "work"}}) {
    requireDType(*t, name, DType::F32);
    requireSameDevice(g, *t, "g", name);
  }
  for (const auto& [t, name] : {std::pair{&support, "support"}, {&previous, "previous"}}) {
    requireDType(*t, name, DType::U8);
    requireSameDevice(g, *t, "g", name);
  }
  for (const auto& [t, name] : {std::pair{&v, "v"}, {&z, "z"}, {&b, "b"}, {&work, "work"}, {&support, "support"},
                                 {&previous, "previous"}}) {
    requireSameNumel(g, *t, "g", name);
  }
  const int64_t cols = g.shape[1];
  const std::string square = "[" + std::to_string(cols) + ", " + std::to_string(cols) + "]";
  const auto isSquare = [&](const TensorView& t) { return t.ndim == 2 && t.shape[0] == cols && t.shape[1] == cols; };
  SPARQ_CHECK(isSquare(inverse), ErrorCode::ShapeMismatch,
              "alpsAdmmStep: inverse must be " + square + " for g " + g.shapeString() + ", got " + inverse.shapeString());
  SPARQ_CHECK(factors.numel() == 0 || factors.numel() == cols, ErrorCode::ShapeMismatch,
              "alpsAdmmStep: factors must be empty or hold " + std::to_string(cols) + " values, got " + factors.shapeString());
  SPARQ_CHECK(factors.numel() == 0 ? back.numel() == 0 : isSquare(back), ErrorCode::ShapeMismatch,
              "alpsAdmmStep: back must be " + std::string(factors.numel() == 0 ? "empty without factors" : square) +
                  ", got " + back.shapeString());
  SPARQ_CHECK(std::isfinite(rho) && rho > 0, ErrorCode::InvalidArgument,
              "alpsAdmmStep: rho must be finite and > 0, got " + std::to_string(rho));
  if (m == 0) {
    SPARQ_CHECK(kept >= 0 && kept <= g.numel(), ErrorCode::InvalidArgument,
                "alpsAdmmStep: kept must be in 0.." + std::to_string(g.numel()) + ", got " + std::to_string(kept));
  } else {
    SPARQ_CHECK(m >= 1 && m <= 32 && n >= 0 && n <= m, ErrorCode::InvalidArgument,
                "alpsAdmmStep: N:M needs 1 <= m <= 32 and 0 <= n <= m, got " + std::to_string(n) + ":" + std::to_string(m));
    SPARQ_CHECK(cols % m == 0, ErrorCode::InvalidArgument,
                "alpsAdmmStep: the row length " + std::to_string(cols) + " is not a multiple of m = " + std::to_string(m));
  }
}

void checkScaleColumns(const TensorView& x, const TensorView& scale, const TensorView& out) {
  requireMatrix(x, "x");
  requireDType(x, "x", DType::F32);
  requireDType(scale, "scale", DType::F32);
  requireDType(out, "out", DType::F32);
  requireSameDevice(x, scale, "x", "scale");
  requireSameDevice(x, out, "x", "out");
  requireSameNumel(x, out, "x", "out");
  SPARQ_CHECK(scale.numel() == x.shape[1], ErrorCode::ShapeMismatch,
              "scaleColumns: scale must have one entry per column of x " + x.shapeString() + ", got " +
                  scale.shapeString());
}

void checkDot(const TensorView& a, const TensorView& b) {
  requireBlasFloat(a, "a");
  requireSameDType(a, b, "a", "b");
  requireSameDevice(a, b, "a", "b");
  requireSameNumel(a, b, "a", "b");
}

void checkQuantGrid(const QuantGrid& grid, const char* op) {
  SPARQ_CHECK(grid.bits >= 1 && grid.bits <= 8, ErrorCode::InvalidArgument,
              std::string(op) + ": bits must be in 1..8, got " + std::to_string(grid.bits));
  SPARQ_CHECK(grid.groupSize >= 1, ErrorCode::InvalidArgument,
              std::string(op) + ": groupSize must be positive, got " + std::to_string(grid.groupSize));
  SPARQ_CHECK(grid.scaleDType == DType::F32 || grid.scaleDType == DType::F16 || grid.scaleDType == DType::BF16,
              ErrorCode::InvalidArgument, std::string(op) + ": scales are stored as f32, f16 or bf16, got " + dtypeName(grid.scaleDType));
}

// groupOf (i32 [cols], or empty) and the [rows, groups] scales/zeros it indexes.
void checkGroups(const TensorView& groupOf, int64_t rows, int64_t cols, const QuantGrid& grid, const TensorView& scales,
                 const TensorView& zeros, bool symmetricZerosMayBeEmpty, const char* op) {
  const int64_t groups = scales.ndim == 2 ? scales.shape[1] : -1;
  requireMatrix(scales, "scales");
  requireDType(scales, "scales", DType::F32);
  SPARQ_CHECK(scales.shape[0] == rows, ErrorCode::ShapeMismatch,
              std::string(op) + ": scales must have " + std::to_string(rows) + " rows, got " + scales.shapeString());
  if (groupOf.numel() == 0) {
    const int64_t expected = (cols + grid.groupSize - 1) / grid.groupSize;
    SPARQ_CHECK(groups == expected || (cols == 0 && groups >= 0), ErrorCode::ShapeMismatch,
                std::string(op) + ": " + std::to_string(cols) + " columns in groups of " + std::to_string(grid.groupSize) +
                    " make " + std::to_string(expected) + " groups; scales is " + scales.shapeString());
  } else {
    requireDType(groupOf, "groupOf", DType::I32);
    SPARQ_CHECK(groupOf.ndim == 1 && groupOf.shape[0] == cols, ErrorCode::ShapeMismatch,
                std::string(op) + ": groupOf must be [" + std::to_string(cols) + "], got " + groupOf.shapeString());
  }
  if (zeros.numel() == 0 && symmetricZerosMayBeEmpty) return;
  requireDType(zeros, "zeros", DType::I8);
  SPARQ_CHECK(zeros.ndim == 2 && zeros.shape[0] == rows && zeros.shape[1] == groups, ErrorCode::ShapeMismatch,
              std::string(op) + ": zeros must have the shape of scales " + scales.shapeString() + ", got " + zeros.shapeString());
}

void checkColumnSweep(const TensorView& w, const TensorView& hinvUpper, const SweepOptions& options) {
  requireMatrix(w, "w");
  requireMatrix(hinvUpper, "hinvUpper");
  requireDType(w, "w", DType::F32);
  requireDType(hinvUpper, "hinvUpper", DType::F32);
  requireSameDevice(w, hinvUpper, "w", "hinvUpper");
  SPARQ_CHECK(hinvUpper.shape[0] == w.shape[1] && hinvUpper.shape[1] == w.shape[1], ErrorCode::ShapeMismatch,
              "columnSweep: hinvUpper must be [" + std::to_string(w.shape[1]) + ", " + std::to_string(w.shape[1]) +
                  "] for w " + w.shapeString() + ", got " + hinvUpper.shapeString());
  SPARQ_CHECK(options.blockSize >= 1, ErrorCode::InvalidArgument,
              "columnSweep: blockSize must be positive, got " + std::to_string(options.blockSize));
  if (options.m == 0) {
    SPARQ_CHECK(options.sparsity >= 0 && options.sparsity <= 1, ErrorCode::InvalidArgument,
                "columnSweep: sparsity must be in [0, 1], got " + std::to_string(options.sparsity));
  } else {
    SPARQ_CHECK(options.m >= 1 && options.m <= 32, ErrorCode::InvalidArgument,
                "columnSweep: m must be in 1..32, got " + std::to_string(options.m));
    SPARQ_CHECK(options.n >= 0 && options.n < options.m, ErrorCode::InvalidArgument,
                "columnSweep: n must be in 0.." + std::to_string(options.m - 1) + ", got " + std::to_string(options.n));
    SPARQ_CHECK(w.shape[1] % options.m == 0, ErrorCode::ShapeMismatch,
                "columnSweep: the row length " + std::to_string(w.shape[1]) + " is not a multiple of m = " +
                    std::to_string(options.m));
  }
  if (options.keep.numel() > 0) {
    requireDType(options.keep, "keep", DType::U8);
    SPARQ_CHECK(options.keep.ndim == 2 && options.keep.shape[0] == w.shape[0] && options.keep.shape[1] == w.shape[1],
                ErrorCode::ShapeMismatch, "columnSweep: keep must have the shape of w " + w.shapeString() + ", got " +
                                              options.keep.shapeString());
    SPARQ_CHECK(options.m == 0 && options.sparsity == 0, ErrorCode::InvalidArgument,
                "columnSweep: weights kept exactly (keep) cannot be combined with pruning");
  }
  if (options.grid.bits == 0) return;
  checkQuantGrid(options.grid, "columnSweep");
  checkGroups(options.groupOf, w.shape[0], w.shape[1], options.grid, options.scales, options.zeros, options.grid.symmetric,
              "columnSweep");
  SPARQ_CHECK(!options.fitAtGroupStart || options.groupOf.numel() == 0, ErrorCode::InvalidArgument,
              "columnSweep: fitting groups during the sweep needs contiguous groups (no groupOf)");
  requireDType(options.codes, "codes", DType::I8);
  SPARQ_CHECK(options.codes.ndim == 2 && options.codes.shape[0] == w.shape[0] && options.codes.shape[1] == w.shape[1],
              ErrorCode::ShapeMismatch, "columnSweep: codes must have the shape of w " + w.shapeString() + ", got " +
                                            options.codes.shapeString());
}

void checkQuantizeRtn(const TensorView& w, const QuantGrid& grid, const TensorView& groupOf, const TensorView& codes,
                      const TensorView& scales, const TensorView& zeros, const TensorView& out) {
  requireMatrix(w, "w");
  requireDType(w, "w", DType::F32);
  checkQuantGrid(grid, "quantizeRtn");
  checkGroups(groupOf, w.shape[0], w.shape[1], grid, scales, zeros, false, "quantizeRtn");
  requireDType(codes, "codes", DType::I8);
  requireDType(out, "out", DType::F32);
  for (const TensorView* t : {&codes, &out}) {
    SPARQ_CHECK(t->ndim == 2 && t->shape[0] == w.shape[0] && t->shape[1] == w.shape[1], ErrorCode::ShapeMismatch,
                "quantizeRtn: codes and out must have the shape of w " + w.shapeString() + ", got " + t->shapeString());
  }
}

int64_t packedWords(int64_t cols, int bits) { return (cols * bits + 31) / 32; }

void checkPacking(const TensorView& codes, int bits, const TensorView& packed, const char* op) {
  SPARQ_CHECK(bits >= 1 && bits <= 8, ErrorCode::InvalidArgument, std::string(op) + ": bits must be in 1..8, got " + std::to_string(bits));
  requireMatrix(codes, "codes");
  requireMatrix(packed, "packed");
  requireDType(codes, "codes", DType::I8);
  requireDType(packed, "packed", DType::I32);
  SPARQ_CHECK(packed.shape[0] == codes.shape[0] && packed.shape[1] == packedWords(codes.shape[1], bits), ErrorCode::ShapeMismatch,
              std::string(op) + ": " + std::to_string(codes.shape[1]) + " codes of " + std::to_string(bits) + " bits per row pack into [" +
                  std::to_string(codes.shape[0]) + ", " + std::to_string(packedWords(codes.shape[1], bits)) + "] words, got " +
                  packed.shapeString());
}

void checkDequantizePacked(const TensorView& packed, int bits, const TensorView& scales, const TensorView& zeros,
                           const TensorView& groupOf, int64_t groupSize, const TensorView& out) {
  requireMatrix(out, "out");
  requireDType(out, "out", DType::F32);
  QuantGrid grid;
  grid.bits = bits;
  grid.groupSize = groupSize;
  checkQuantGrid(grid, "dequantizePacked");
  requireMatrix(packed, "packed");
  requireDType(packed, "packed", DType::I32);
  SPARQ_CHECK(packed.shape[0] == out.shape[0] && packed.shape[1] == packedWords(out.shape[1], bits), ErrorCode::ShapeMismatch,
              "dequantizePacked: packed must be [" + std::to_string(out.shape[0]) + ", " +
                  std::to_string(packedWords(out.shape[1], bits)) + "] for out " + out.shapeString() + ", got " + packed.shapeString());
  checkGroups(groupOf, out.shape[0], out.shape[1], grid, scales, zeros, true, "dequantizePacked");
}

void checkNmMask(const TensorView& scores, int n, int m, const TensorView& mask) {
  requireMatrix(scores, "scores");
  requireDType(scores, "scores", DType::F32);
  requireDType(mask, "mask", DType::U8);
  requireSameDevice(scores, mask, "scores", "mask");
  requireSameNumel(scores, mask, "scores", "mask");
  SPARQ_CHECK(m >= 1 && m <= 32, ErrorCode::InvalidArgument, "nmMask: m must be in 1..32, got " + std::to_string(m));
  SPARQ_CHECK(n >= 0 && n < m, ErrorCode::InvalidArgument,
          "nmMask: n must be in 0.." + std::to_string(m - 1) + " (n < m), got " + std::to_string(n));
  SPARQ_CHECK(scores.shape[1] % m == 0, ErrorCode::ShapeMismatch,
          "nmMask: the row length " + std::to_string(scores.shape[1]) + " is not a multiple of m = " + std::to_string(m));
}

void checkThresholdMask(const TensorView& scores, const TensorView& mask) {
  requireDType(scores, "scores", DType::F32);
  requireDType(mask, "mask", DType::U8);
  requireSameDevice(scores, mask, "scores", "mask");
  requireSameNumel(scores, mask, "scores", "mask");
}

void checkApplyMask(const TensorView& x, const TensorView& mask, const TensorView& out) {
  SPARQ_CHECK(isFloating(x.dtype), ErrorCode::DTypeMismatch,
          std::string("applyMask: x must be a float dtype, got ") + dtypeName(x.dtype));
  requireDType(mask, "mask", DType::U8);
  requireSameDType(x, out, "x", "out");
  requireSameDevice(x, mask, "x", "mask");
  requireSameDevice(x, out, "x", "out");
  requireSameNumel(x, mask, "x", "mask");
  requireSameNumel(x, out, "x", "out");
}

void checkAxpy(const TensorView& x, const TensorView& y) {
  requireBlasFloat(x, "x");
  requireSameDType(x, y, "x", "y");
  requireSameDevice(x, y, "x", "y");
  requireSameNumel(x, y, "x", "y");
}

void checkUnary(UnaryOp op, const TensorView& x, const TensorView& out) {
  SPARQ_CHECK(static_cast<int32_t>(op) >= 0 && static_cast<int32_t>(op) < kUnaryOpCount, ErrorCode::InvalidArgument,
          "unknown unary op " + std::to_string(static_cast<int32_t>(op)));
  requireBlasFloat(x, "x");
  requireSameDType(x, out, "x", "out");
  requireSameDevice(x, out, "x", "out");
  requireSameNumel(x, out, "x", "out");
}

void checkEmbedding(const TensorView& table, const TensorView& ids, const TensorView& out) {
  requireMatrix(table, "table");
  requireDType(table, "table", DType::F32);
  requireDType(ids, "ids", DType::I32);
  requireDType(out, "out", DType::F32);
  requireSameDevice(table, ids, "table", "ids");
  requireSameDevice(table, out, "table", "out");
  SPARQ_CHECK(out.numel() == ids.numel() * table.shape[1], ErrorCode::ShapeMismatch,
              "embedding: out must hold " + std::to_string(ids.numel()) + " rows of " + std::to_string(table.shape[1]) +
                  ", got " + out.shapeString());
}

void checkNorm(NormKind kind, const TensorView& x, const TensorView& weight, const TensorView& bias, const TensorView& out,
               double eps) {
  SPARQ_CHECK(kind == NormKind::Rms || kind == NormKind::Layer, ErrorCode::InvalidArgument, "norm: unknown kind");
  requireDType(x, "x", DType::F32);
  requireSameDType(x, weight, "x", "weight");
  requireSameDType(x, out, "x", "out");
  requireSameDevice(x, weight, "x", "weight");
  requireSameDevice(x, out, "x", "out");
  requireSameNumel(x, out, "x", "out");
  SPARQ_CHECK(x.ndim >= 1 && weight.numel() == x.cols(), ErrorCode::ShapeMismatch,
              "norm: weight must have the row length " + std::to_string(x.cols()) + " of x " + x.shapeString() +
                  ", got " + weight.shapeString());
  SPARQ_CHECK(bias.numel() == 0 || (kind == NormKind::Layer && bias.numel() == x.cols() && bias.dtype == DType::F32 &&
                                    bias.device == x.device),
              ErrorCode::ShapeMismatch, "norm: bias must be empty, or an f32 row of " + std::to_string(x.cols()) +
                                            " for LayerNorm, got " + bias.shapeString());
  SPARQ_CHECK(eps >= 0 && eps == eps, ErrorCode::InvalidArgument, "norm: eps must be >= 0");
}

void checkRope(const TensorView& x, const TensorView& positions, const TensorView& invFreq) {
  requireDType(x, "x", DType::F32);
  requireDType(positions, "positions", DType::I32);
  requireDType(invFreq, "invFreq", DType::F32);
  requireSameDevice(x, positions, "x", "positions");
  requireSameDevice(x, invFreq, "x", "invFreq");
  SPARQ_CHECK(x.ndim == 3 && x.shape[2] % 2 == 0, ErrorCode::ShapeMismatch,
              "rope: x must be [tokens, heads, head_dim] with an even head_dim, got " + x.shapeString());
  SPARQ_CHECK(positions.numel() == x.shape[0], ErrorCode::ShapeMismatch,
              "rope: positions must have one entry per token (" + std::to_string(x.shape[0]) + "), got " +
                  positions.shapeString());
  SPARQ_CHECK(invFreq.numel() == x.shape[2] / 2, ErrorCode::ShapeMismatch,
              "rope: invFreq must have head_dim / 2 = " + std::to_string(x.shape[2] / 2) + " entries, got " +
                  invFreq.shapeString());
}

void checkAttention(const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& out) {
  for (const auto* t : {&q, &k, &v, &out}) requireDType(*t, "q, k, v and out", DType::F32);
  requireSameDevice(q, k, "q", "k");
  requireSameDevice(q, v, "q", "v");
  requireSameDevice(q, out, "q", "out");
  SPARQ_CHECK(q.ndim == 3 && k.ndim == 3 && v.ndim == 3 && out.ndim == 3, ErrorCode::ShapeMismatch,
              "attention: q, k, v and out must be [tokens, heads, head_dim]");
  SPARQ_CHECK(k.shape[0] == v.shape[0] && k.shape[1] == v.shape[1] && k.shape[2] == q.shape[2] &&
                  v.shape[2] == q.shape[2],
              ErrorCode::ShapeMismatch,
              "attention: k " + k.shapeString() + " and v " + v.shapeString() + " must match each other and q's head_dim");
  SPARQ_CHECK(k.shape[1] > 0 && q.shape[1] % k.shape[1] == 0, ErrorCode::ShapeMismatch,
              "attention: query heads (" + std::to_string(q.shape[1]) + ") must be a multiple of key/value heads (" +
                  std::to_string(k.shape[1]) + ")");
  SPARQ_CHECK(k.shape[0] >= q.shape[0], ErrorCode::ShapeMismatch, "attention: fewer keys than queries");
  SPARQ_CHECK(out.shape[0] == q.shape[0] && out.shape[1] == q.shape[1] && out.shape[2] == q.shape[2],
              ErrorCode::ShapeMismatch, "attention: out must have q's shape " + q.shapeString());
}

void checkSiluMul(const TensorView& gate, const TensorView& up, const TensorView& out) {
  requireDType(gate, "gate", DType::F32);
  requireSameDType(gate, up, "gate", "up");
  requireSameDType(gate, out, "gate", "out");
  requireSameDevice(gate, up, "gate", "up");
  requireSameDevice(gate, out, "gate", "out");
  requireSameNumel(gate, up, "gate", "up");
  requireSameNumel(gate, out, "gate", "out");
}

void checkAddBias(const TensorView& x, const TensorView& bias) {
  requireDType(x, "x", DType::F32);
  requireSameDType(x, bias, "x", "bias");
  requireSameDevice(x, bias, "x", "bias");
  SPARQ_CHECK(x.ndim >= 1 && bias.numel() == x.cols(), ErrorCode::ShapeMismatch,
              "addBias: bias must have the row length " + std::to_string(x.cols()) + " of x " + x.shapeString() +
                  ", got " + bias.shapeString());
}

void checkCrossEntropy(const TensorView& logits, const TensorView& targets, const TensorView& nll) {
  requireMatrix(logits, "logits");
  requireDType(logits, "logits", DType::F32);
  requireDType(targets, "targets", DType::I32);
  requireDType(nll, "nll", DType::F32);
  requireSameDevice(logits, targets, "logits", "targets");
  requireSameDevice(logits, nll, "logits", "nll");
  SPARQ_CHECK(targets.numel() == logits.shape[0] && nll.numel() == logits.shape[0], ErrorCode::ShapeMismatch,
              "crossEntropy: targets and nll need one entry per row of logits " + logits.shapeString());
}

void checkScatterAdd(const TensorView& out, const TensorView& rows, const TensorView& indices, const TensorView& weights) {
  requireMatrix(out, "out");
  requireMatrix(rows, "rows");
  requireDType(out, "out", DType::F32);
  requireDType(rows, "rows", DType::F32);
  requireDType(indices, "indices", DType::I32);
  requireDType(weights, "weights", DType::F32);
  for (const auto* t : {&rows, &indices, &weights}) requireSameDevice(out, *t, "out", "rows, indices and weights");
  SPARQ_CHECK(rows.shape[1] == out.shape[1] && indices.numel() == rows.shape[0] && weights.numel() == rows.shape[0],
              ErrorCode::ShapeMismatch,
              "scatterAdd: rows " + rows.shapeString() + " must match out's row length " + std::to_string(out.shape[1]) +
                  ", with one index and one weight per row");
}


// ---- backward kernels and the optimizer step ----

namespace {

// Every tensor f32 (or i32 for ids), on `first`'s device; messages name the op and the argument.
void requireF32(const char* op, const TensorView& t, const char* name) {
  SPARQ_CHECK(t.dtype == DType::F32, ErrorCode::DTypeMismatch,
              std::string(op) + ": " + name + " must be f32, got " + dtypeName(t.dtype));
}

void requireI32(const char* op, const TensorView& t, const char* name) {
  SPARQ_CHECK(t.dtype == DType::I32, ErrorCode::DTypeMismatch,
              std::string(op) + ": " + name + " must be i32, got " + dtypeName(t.dtype));
}

void requireDevice(const char* op, const TensorView& first, const char* firstName, const TensorView& t, const char* name) {
  SPARQ_CHECK(t.device == first.device, ErrorCode::DeviceMismatch,
              std::string(op) + ": " + name + " is on " + deviceName(t.device) + " but " + firstName + " is on " +
                  deviceName(first.device));
}

void requireNumel(const char* op, const TensorView& t, const char* name, int64_t numel, const std::string& what) {
  SPARQ_CHECK(t.numel() == numel, ErrorCode::ShapeMismatch,
              std::string(op) + ": " + name + " must have " + std::to_string(numel) + " elements (" + what + "), got " +
                  t.shapeString());
}

bool sameShape(const TensorView& a, const TensorView& b) {
  if (a.ndim != b.ndim) return false;
  for (int i = 0; i < a.ndim; ++i) {
    if (a.shape[i] != b.shape[i]) return false;
  }
  return true;
}

void requireShape(const char* op, const TensorView& t, const char* name, const TensorView& like, const char* likeName) {
  SPARQ_CHECK(sameShape(t, like), ErrorCode::ShapeMismatch,
              std::string(op) + ": " + name + " must have " + likeName + "'s shape " + like.shapeString() + ", got " +
                  t.shapeString());
}

}  // namespace

void checkEmbeddingBackward(const TensorView& gradOut, const TensorView& ids, const TensorView& gradTable) {
  const char* op = "embeddingBackward";
  requireF32(op, gradOut, "gradOut");
  requireI32(op, ids, "ids");
  requireF32(op, gradTable, "gradTable");
  requireDevice(op, gradTable, "gradTable", gradOut, "gradOut");
  requireDevice(op, gradTable, "gradTable", ids, "ids");
  SPARQ_CHECK(gradTable.ndim == 2, ErrorCode::ShapeMismatch,
              std::string(op) + ": gradTable must be [vocab, dim], got " + gradTable.shapeString());
  SPARQ_CHECK(gradOut.ndim >= 1 && gradOut.cols() == gradTable.shape[1] && gradOut.numel() == ids.numel() * gradTable.shape[1],
              ErrorCode::ShapeMismatch,
              std::string(op) + ": gradOut must be [...ids.shape, " + std::to_string(gradTable.shape[1]) + "] for ids " +
                  ids.shapeString() + ", got " + gradOut.shapeString());
}

void checkNormBackward(NormKind kind, const TensorView& x, const TensorView& weight, const TensorView& gradOut, double eps,
                       const TensorView& gradX, const TensorView& gradWeight, const TensorView& gradBias) {
  const char* op = "normBackward";
  SPARQ_CHECK(kind == NormKind::Rms || kind == NormKind::Layer, ErrorCode::InvalidArgument,
              std::string(op) + ": unknown kind");
  const std::pair<const TensorView*, const char*> tensors[] = {
      {&x, "x"}, {&weight, "weight"}, {&gradOut, "gradOut"}, {&gradX, "gradX"}, {&gradWeight, "gradWeight"}};
  for (const auto& [t, name] : tensors) {
    requireF32(op, *t, name);
    requireDevice(op, x, "x", *t, name);
  }
  SPARQ_CHECK(x.ndim >= 1, ErrorCode::ShapeMismatch, std::string(op) + ": x must have at least one dimension");
  const int64_t dim = x.cols();
  const std::string row = "the row length of x " + x.shapeString();
  requireNumel(op, weight, "weight", dim, row);
  requireNumel(op, gradWeight, "gradWeight", dim, row);
  requireNumel(op, gradOut, "gradOut", x.numel(), "as many as x " + x.shapeString());
  requireNumel(op, gradX, "gradX", x.numel(), "as many as x " + x.shapeString());
  if (gradBias.numel() > 0) {
    SPARQ_CHECK(kind == NormKind::Layer, ErrorCode::InvalidArgument,
                std::string(op) + ": gradBias is for LayerNorm only; RMSNorm has no bias");
    requireF32(op, gradBias, "gradBias");
    requireDevice(op, x, "x", gradBias, "gradBias");
    requireNumel(op, gradBias, "gradBias", dim, row);
  }
  SPARQ_CHECK(eps >= 0 && eps == eps, ErrorCode::InvalidArgument, std::string(op) + ": eps must be >= 0");
}

void checkRopeBackward(const TensorView& grad, const TensorView& positions, const TensorView& invFreq) {
  const char* op = "ropeBackward";
  requireF32(op, grad, "grad");
  requireI32(op, positions, "positions");
  requireF32(op, invFreq, "invFreq");
  requireDevice(op, grad, "grad", positions, "positions");
  requireDevice(op, grad, "grad", invFreq, "invFreq");
  SPARQ_CHECK(grad.ndim == 3 && grad.shape[2] % 2 == 0, ErrorCode::ShapeMismatch,
              std::string(op) + ": grad must be [tokens, heads, head_dim] with an even head_dim, got " +
                  grad.shapeString());
  requireNumel(op, positions, "positions", grad.shape[0], "one per token");
  requireNumel(op, invFreq, "invFreq", grad.shape[2] / 2, "head_dim / 2");
}

void checkAttentionBackward(const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& out,
                            const TensorView& gradOut, const TensorView& gradQ, const TensorView& gradK,
                            const TensorView& gradV, double scale) {
  const char* op = "attentionBackward";
  const std::pair<const TensorView*, const char*> tensors[] = {{&q, "q"},         {&k, "k"},         {&v, "v"},
                                                                {&out, "out"},     {&gradOut, "gradOut"},
                                                                {&gradQ, "gradQ"}, {&gradK, "gradK"}, {&gradV, "gradV"}};
  for (const auto& [t, name] : tensors) {
    requireF32(op, *t, name);
    requireDevice(op, q, "q", *t, name);
  }
  SPARQ_CHECK(q.ndim == 3 && k.ndim == 3, ErrorCode::ShapeMismatch,
              std::string(op) + ": q " + q.shapeString() + " and k " + k.shapeString() +
                  " must be [tokens, heads, head_dim]");
  requireShape(op, v, "v", k, "k");
  SPARQ_CHECK(k.shape[2] == q.shape[2], ErrorCode::ShapeMismatch,
              std::string(op) + ": k " + k.shapeString() + " must have q's head_dim " + std::to_string(q.shape[2]));
  SPARQ_CHECK(k.shape[1] > 0 && q.shape[1] % k.shape[1] == 0, ErrorCode::ShapeMismatch,
              std::string(op) + ": query heads (" + std::to_string(q.shape[1]) + ") must be a multiple of key/value heads (" +
                  std::to_string(k.shape[1]) + ")");
  SPARQ_CHECK(k.shape[0] >= q.shape[0], ErrorCode::ShapeMismatch,
              std::string(op) + ": fewer keys (" + std::to_string(k.shape[0]) + ") than queries (" +
                  std::to_string(q.shape[0]) + ")");
  requireShape(op, out, "out", q, "q");
  requireShape(op, gradOut, "gradOut", q, "q");
  requireShape(op, gradQ, "gradQ", q, "q");
  requireShape(op, gradK, "gradK", k, "k");
  requireShape(op, gradV, "gradV", k, "k");
  SPARQ_CHECK(std::isfinite(scale), ErrorCode::InvalidArgument, std::string(op) + ": scale must be finite");
}

void checkSiluMulBackward(const TensorView& gate, const TensorView& up, const TensorView& gradOut,
                          const TensorView& gradGate, const TensorView& gradUp) {
  const char* op = "siluMulBackward";
  const std::pair<const TensorView*, const char*> tensors[] = {
      {&gate, "gate"}, {&up, "up"}, {&gradOut, "gradOut"}, {&gradGate, "gradGate"}, {&gradUp, "gradUp"}};
  for (const auto& [t, name] : tensors) {
    requireF32(op, *t, name);
    requireDevice(op, gate, "gate", *t, name);
    requireNumel(op, *t, name, gate.numel(), "as many as gate " + gate.shapeString());
  }
}

void checkActivationBackward(UnaryOp op, const TensorView& x, const TensorView& gradOut, const TensorView& out) {
  const char* name = "activationBackward";
  SPARQ_CHECK(op == UnaryOp::Relu || op == UnaryOp::Silu || op == UnaryOp::Gelu || op == UnaryOp::GeluTanh,
              ErrorCode::InvalidArgument,
              std::string(name) + ": op must be relu, silu, gelu or geluTanh, got code " +
                  std::to_string(static_cast<int32_t>(op)));
  const std::pair<const TensorView*, const char*> tensors[] = {{&x, "x"}, {&gradOut, "gradOut"}, {&out, "out"}};
  for (const auto& [t, param] : tensors) {
    requireF32(name, *t, param);
    requireDevice(name, x, "x", *t, param);
    requireNumel(name, *t, param, x.numel(), "as many as x " + x.shapeString());
  }
}

void checkColumnSums(const TensorView& x, const TensorView& out) {
  const char* op = "columnSums";
  requireF32(op, x, "x");
  requireF32(op, out, "out");
  requireDevice(op, x, "x", out, "out");
  SPARQ_CHECK(x.ndim >= 1, ErrorCode::ShapeMismatch, std::string(op) + ": x must have at least one dimension");
  requireNumel(op, out, "out", x.cols(), "the row length of x " + x.shapeString());
}

void checkCrossEntropyBackward(const TensorView& logits, const TensorView& targets, const TensorView& gradNll,
                               const TensorView& gradLogits) {
  const char* op = "crossEntropyBackward";
  requireF32(op, logits, "logits");
  requireI32(op, targets, "targets");
  requireF32(op, gradNll, "gradNll");
  requireF32(op, gradLogits, "gradLogits");
  requireDevice(op, logits, "logits", targets, "targets");
  requireDevice(op, logits, "logits", gradNll, "gradNll");
  requireDevice(op, logits, "logits", gradLogits, "gradLogits");
  SPARQ_CHECK(logits.ndim == 2, ErrorCode::ShapeMismatch,
              std::string(op) + ": logits must be [rows, vocab], got " + logits.shapeString());
  requireNumel(op, targets, "targets", logits.shape[0], "one per row of logits " + logits.shapeString());
  requireNumel(op, gradNll, "gradNll", logits.shape[0], "one per row of logits " + logits.shapeString());
  requireShape(op, gradLogits, "gradLogits", logits, "logits");
}

void checkScatterAddBackward(const TensorView& gradOut, const TensorView& rows, const TensorView& indices,
                             const TensorView& weights, const TensorView& gradRows, const TensorView& gradWeights) {
  const char* op = "scatterAddBackward";
  requireF32(op, gradOut, "gradOut");
  requireF32(op, rows, "rows");
  requireI32(op, indices, "indices");
  requireF32(op, weights, "weights");
  requireF32(op, gradRows, "gradRows");
  requireF32(op, gradWeights, "gradWeights");
  const std::pair<const TensorView*, const char*> tensors[] = {
      {&rows, "rows"}, {&indices, "indices"}, {&weights, "weights"}, {&gradRows, "gradRows"}, {&gradWeights, "gradWeights"}};
  for (const auto& [t, name] : tensors) requireDevice(op, gradOut, "gradOut", *t, name);
  SPARQ_CHECK(gradOut.ndim == 2 && rows.ndim == 2 && rows.shape[1] == gradOut.shape[1], ErrorCode::ShapeMismatch,
              std::string(op) + ": gradOut " + gradOut.shapeString() + " and rows " + rows.shapeString() +
                  " must be matrices with the same row length");
  const std::string perRow = "one per row of rows " + rows.shapeString();
  requireNumel(op, indices, "indices", rows.shape[0], perRow);
  requireNumel(op, weights, "weights", rows.shape[0], perRow);
  requireNumel(op, gradWeights, "gradWeights", rows.shape[0], perRow);
  requireShape(op, gradRows, "gradRows", rows, "rows");
}

void checkAdamwStep(const TensorView& param, const TensorView& grad, const TensorView& m, const TensorView& v,
                    const AdamwOptions& options) {
  const char* op = "adamwStep";
  const std::pair<const TensorView*, const char*> tensors[] = {{&param, "param"}, {&grad, "grad"}, {&m, "m"}, {&v, "v"}};
  for (const auto& [t, name] : tensors) {
    requireF32(op, *t, name);
    requireDevice(op, param, "param", *t, name);
    requireNumel(op, *t, name, param.numel(), "as many as param " + param.shapeString());
  }
  const auto inUnit = [](double b) { return b >= 0 && b < 1; };
  SPARQ_CHECK(std::isfinite(options.lr) && options.lr >= 0, ErrorCode::InvalidArgument,
              std::string(op) + ": lr must be a finite number >= 0");
  SPARQ_CHECK(inUnit(options.beta1) && inUnit(options.beta2), ErrorCode::InvalidArgument,
              std::string(op) + ": beta1 and beta2 must be in [0, 1)");
  SPARQ_CHECK(std::isfinite(options.eps) && options.eps >= 0, ErrorCode::InvalidArgument,
              std::string(op) + ": eps must be a finite number >= 0");
  SPARQ_CHECK(std::isfinite(options.weightDecay) && options.weightDecay >= 0, ErrorCode::InvalidArgument,
              std::string(op) + ": weightDecay must be a finite number >= 0");
  SPARQ_CHECK(options.step >= 1, ErrorCode::InvalidArgument, std::string(op) + ": step must be >= 1");
}

}  // namespace sparq

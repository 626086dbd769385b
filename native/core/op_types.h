// The argument types shared by ops: enums, options and reports. Plain data, no behaviour.
#pragma once
#include <cstdint>

#include "quant.h"
#include "tensor.h"

namespace sparq {

struct CholeskyOptions {
  bool upper = false;     // return U with A = UᵀU instead of L with A = LLᵀ
  bool inverse = false;   // return (A + λI)⁻¹ instead of its factor
  double damp = 0.0;      // first rung of the ladder, relative to mean(|diag A|)
  int maxAttempts = 6;    // rungs: damp, then ×10 each (starting at 1e-6 if damp is 0)
};

struct CholeskyReport {
  double relativeDamping = 0;  // λ / mean(|diag A|) actually used
  double absoluteDamping = 0;  // λ actually added to the diagonal
  int attempts = 0;            // factorizations tried, the successful one included
};

enum class UnaryOp : int32_t {
  Copy = 0,
  Abs = 1,
  Square = 2,
  Scale = 3,
  Clamp = 4,
  Relu = 5,
  Silu = 6,
  Gelu = 7,      // exact: x·Φ(x) with erf
  GeluTanh = 8,  // the tanh approximation ("gelu_new", "gelu_pytorch_tanh")
};
constexpr int32_t kUnaryOpCount = 9;

// Row-wise normalization: RMSNorm y = x / sqrt(mean(x²) + eps) · w, or LayerNorm
// y = (x − mean) / sqrt(var + eps) · w + b (biased variance, as PyTorch).
// The optimal-brain-surgeon column sweep shared by SparseGPT and GPTQ: for each column, in order, a
// policy decides its new values — prune to a pattern, round to a grid, or both — and the error is
// moved onto the columns not yet visited. Pruning: unstructured `sparsity` (fraction of zeros) when m is
// 0, else keep n of every m consecutive inputs of each row; neither when sparsity is 0 and m is 0.
// blockSize is the lazy-update block (rounded down to a multiple of m).
struct SweepOptions {
  double sparsity = 0;
  int n = 0, m = 0;
  int blockSize = 128;
  // Quantization (grid.bits 0: none). Group g's scale and zero point of row r are scales[r, g] and
  // zeros[r, g]: given (fixed before the sweep), or, with fitAtGroupStart, fitted from the row's
  // current weights of the group when the sweep's block reaches the group's first column (the GPTQ
  // reference; contiguous groups only). groupOf i32 [cols] (may be empty) is the group of each swept
  // column, for sweeps in activation order; codes i8 [rows, cols] receives every column's code.
  QuantGrid grid;
  bool fitAtGroupStart = false;
  TensorView groupOf, scales, zeros, codes;
  // keep u8 [rows, cols] (may be empty): 1 = the weight is kept exactly as the sweep reaches it (the
  // outliers of GWQ/SpQR, stored apart): q_j = w_j, no error moves on, its code is the grid's zero point
  // (it decodes to 0, so a base format plus the outlier's value is the weight), and fitted grids ignore it.
  // Not combined with pruning.
  TensorView keep;
};

// Conjugate gradient on a fixed support (ALPS's refinement); see cpu/alps.cpp.
struct MaskedCgOptions {
  int maxIterations = 10;
  double rtol = 1e-4;
};
struct MaskedCgReport {
  int iterations = 0;
  bool converged = false;
};

enum class NormKind : int32_t { Rms = 0, Layer = 1 };

// One AdamW step (decoupled weight decay, bias-corrected moments); step counts from 1.
struct AdamwOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.01;
  int64_t step = 1;
};

}  // namespace sparq

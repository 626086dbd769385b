// The op table: every op sparq's backends offer, one row each. A row is an Op struct holding the op's
// arguments (and its result, if any), listing them in JavaScript call order (visit) and validating them
// (check, from ops.h). From that one row come the N-API sync and async functions (napi/ops.cpp), the
// backend's kernel slot (Backend::provide / run) and the supports(op) query. Adding an op: write its
// struct here, add it to SPARQ_OPS, give the CPU backend a kernel, and give lib/tensor a wrapper.
//
// visit(v) calls v(name, field) for each argument in the order JavaScript passes them; a QuantGrid
// field is four values (bits, groupSize, symmetric, scaleDType) and an enum one integer.
#pragma once
#include "ops.h"
#include "packed_formats.h"

namespace sparq {

// ---------------------------------------------------------------- dense algebra

// c = alpha·op(a)·op(b) + beta·c, op = optional transpose; f32 or f64.
struct GemmOp {
  static constexpr const char* kName = "gemm";
  TensorView a, b, c;
  bool transA = false, transB = false;
  double alpha = 1, beta = 0;
  template <class V> void visit(V&& v) {
    v("a", a), v("transA", transA), v("b", b), v("transB", transB), v("c", c), v("alpha", alpha), v("beta", beta);
  }
  void check() const { checkGemm(a, transA, b, transB, c); }
};

// c = alpha·xᵀx + beta·c for x [rows, n], c [n, n], on the lower triangle; with fillUpper the lower
// triangle is then copied onto the upper one, else the upper one is left as it was. Accumulating many
// batches lower-only and filling once at the end saves a pass over c per batch.
struct SyrkOp {
  static constexpr const char* kName = "syrk";
  TensorView x, c;
  double alpha = 1, beta = 0;
  bool fillUpper = true;
  template <class V> void visit(V&& v) {
    v("x", x), v("c", c), v("alpha", alpha), v("beta", beta), v("fillUpper", fillUpper);
  }
  void check() const { checkSyrk(x, c); }
};

// out = factor or inverse of a + λI (a is read only, unless out aliases it). Climbs the damping ladder
// while the matrix is not positive definite; throws NotPositiveDefinite past its top.
struct CholeskyOp {
  static constexpr const char* kName = "cholesky";
  TensorView a, out;
  CholeskyOptions options;
  CholeskyReport result;
  template <class V> void visit(V&& v) {
    v("a", a), v("out", out), v("upper", options.upper), v("inverse", options.inverse), v("damp", options.damp),
        v("maxAttempts", options.maxAttempts);
  }
  void check() const { checkCholesky(a, out, options); }
};

// Solves op(t)·x = alpha·b (left) or x·op(t) = alpha·b (right) for triangular t; x overwrites b.
struct TrsmOp {
  static constexpr const char* kName = "trsm";
  TensorView t, b;
  bool lower = true, transT = false, left = true, unitDiagonal = false;
  double alpha = 1;
  template <class V> void visit(V&& v) {
    v("t", t), v("b", b), v("lower", lower), v("transT", transT), v("left", left), v("unitDiagonal", unitDiagonal),
        v("alpha", alpha);
  }
  void check() const { checkTrsm(t, b, left); }
};

// Symmetric eigendecomposition of a [n, n] f64 (lower triangle read): values ascending [n], vectors [n, n]
// with row i the unit eigenvector of values[i].
struct EighOp {
  static constexpr const char* kName = "eigh";
  TensorView a, values, vectors;
  template <class V> void visit(V&& v) { v("a", a), v("values", values), v("vectors", vectors); }
  void check() const { checkEigh(a, values, vectors); }
};

// Σ a[i]·b[i] accumulated in f64 (f32 or f64 inputs of equal shape); NaN/inf propagate.
struct DotOp {
  static constexpr const char* kName = "dot";
  TensorView a, b;
  double result = 0;
  template <class V> void visit(V&& v) { v("a", a), v("b", b); }
  void check() const { checkDot(a, b); }
};

// ---------------------------------------------------------------- elementwise and masks

// Element type conversion between any float types, and from integers to floats.
struct ConvertOp {
  static constexpr const char* kName = "convert";
  TensorView src, dst;
  template <class V> void visit(V&& v) { v("src", src), v("dst", dst); }
  void check() const { checkConvert(src, dst); }
};

// Row-wise selection over f32 scores [rows, cols] into a u8 mask (1 = selected): the k largest (or
// smallest) of each row; ties go to the lower column index.
struct TopkMaskOp {
  static constexpr const char* kName = "topkMask";
  TensorView scores, mask;
  int64_t k = 0;
  bool largest = true;
  template <class V> void visit(V&& v) { v("scores", scores), v("k", k), v("largest", largest), v("mask", mask); }
  void check() const { checkTopkMask(scores, k, mask); }
};

// N:M: the n largest (or smallest) of every m consecutive entries of a row; ties to the lower index.
struct NmMaskOp {
  static constexpr const char* kName = "nmMask";
  TensorView scores, mask;
  int n = 2, m = 4;
  bool largest = true;
  template <class V> void visit(V&& v) { v("scores", scores), v("n", n), v("m", m), v("largest", largest), v("mask", mask); }
  void check() const { checkNmMask(scores, n, m, mask); }
};

// mask = scores > threshold.
struct ThresholdMaskOp {
  static constexpr const char* kName = "thresholdMask";
  TensorView scores, mask;
  double threshold = 0;
  template <class V> void visit(V&& v) { v("scores", scores), v("threshold", threshold), v("mask", mask); }
  void check() const { checkThresholdMask(scores, mask); }
};

// out = mask ? x : 0 (out may alias x).
struct ApplyMaskOp {
  static constexpr const char* kName = "applyMask";
  TensorView x, mask, out;
  template <class V> void visit(V&& v) { v("x", x), v("mask", mask), v("out", out); }
  void check() const { checkApplyMask(x, mask, out); }
};

// y += alpha·x.
struct AxpyOp {
  static constexpr const char* kName = "axpy";
  TensorView x, y;
  double alpha = 1;
  template <class V> void visit(V&& v) { v("alpha", alpha), v("x", x), v("y", y); }
  void check() const { checkAxpy(x, y); }
};

// out = op(x): copy, |x|, x², a·x, clamp(x, a, b), or an activation (out may alias x).
struct ElementwiseUnaryOp {
  static constexpr const char* kName = "unary";
  UnaryOp op = UnaryOp::Copy;
  TensorView x, out;
  double a = 0, b = 0;
  template <class V> void visit(V&& v) { v("op", op), v("x", x), v("out", out), v("a", a), v("b", b); }
  void check() const { checkUnary(op, x, out); }
};

// out[r, c] = x[r, c]·scale[c] for x [R, C] f32, scale f32 [C] (out may alias x).
struct ScaleColumnsOp {
  static constexpr const char* kName = "scaleColumns";
  TensorView x, scale, out;
  template <class V> void visit(V&& v) { v("x", x), v("scale", scale), v("out", out); }
  void check() const { checkScaleColumns(x, scale, out); }
};

// ---------------------------------------------------------------- compression solvers

// For every row r of x [m, n] f32 (in place): solve h_SS·x_S = g_S on S = {j : mask[r, j]} by
// Jacobi-preconditioned CG from the given x, zeroed off S (h [n, n] f32 symmetric positive definite, g [m, n]).
struct MaskedCgOp {
  static constexpr const char* kName = "maskedCg";
  TensorView h, g, mask, x;
  MaskedCgOptions options;
  MaskedCgReport result;
  template <class V> void visit(V&& v) {
    v("h", h), v("g", g), v("mask", mask), v("x", x), v("maxIterations", options.maxIterations), v("rtol", options.rtol);
  }
  void check() const { checkMaskedCg(h, g, mask, x, options); }
};

// The column sweep (SweepOptions) on w [rows, cols] f32 in place, given U [cols, cols] f32, the upper
// Cholesky factor of the damped inverse Hessian (H⁻¹ = UᵀU; only the upper triangle is read).
struct ColumnSweepOp {
  static constexpr const char* kName = "columnSweep";
  TensorView w, hinvUpper;
  SweepOptions options;
  template <class V> void visit(V&& v) {
    v("w", w), v("hinvUpper", hinvUpper), v("sparsity", options.sparsity), v("n", options.n), v("m", options.m),
        v("blockSize", options.blockSize), v("grid", options.grid), v("fitAtGroupStart", options.fitAtGroupStart),
        v("groupOf", options.groupOf), v("scales", options.scales), v("zeros", options.zeros), v("codes", options.codes),
        v("keep", options.keep);
  }
  void check() const { checkColumnSweep(w, hinvUpper, options); }
};

// ---------------------------------------------------------------- integer quantization (core/quant.h's grid)

// Round to nearest: scales f32 [R, G] and zeros i8 [R, G] from each group's range, codes i8 [R, C], and the
// decoded weights out f32 [R, C] (may alias w). groupOf i32 [C] (may be empty) assigns columns to groups;
// otherwise group g is columns [g·groupSize, (g+1)·groupSize).
struct QuantizeRtnOp {
  static constexpr const char* kName = "quantizeRtn";
  TensorView w, groupOf, codes, scales, zeros, out;
  QuantGrid grid;
  template <class V> void visit(V&& v) {
    v("w", w), v("grid", grid), v("groupOf", groupOf), v("codes", codes), v("scales", scales), v("zeros", zeros),
        v("out", out);
  }
  void check() const { checkQuantizeRtn(w, grid, groupOf, codes, scales, zeros, out); }
};

// codes i8 [R, C] of b bits → words i32 [R, ceil(C·b/32)]: code + 2^(b−1) at bit i·b of the row (element 0
// in the low bits, values crossing word boundaries when b does not divide 32), unused bits 0.
struct PackCodesOp {
  static constexpr const char* kName = "packCodes";
  TensorView codes, packed;
  int bits = 4;
  template <class V> void visit(V&& v) { v("codes", codes), v("bits", bits), v("packed", packed); }
  void check() const { checkPacking(codes, bits, packed, kName); }
};

// The inverse of packCodes.
struct UnpackCodesOp {
  static constexpr const char* kName = "unpackCodes";
  TensorView packed, codes;
  int bits = 4;
  template <class V> void visit(V&& v) { v("packed", packed), v("bits", bits), v("codes", codes); }
  void check() const { checkPacking(codes, bits, packed, kName); }
};

// out f32 [R, C] = (code − zero)·scale for packed codes i32 [R, ceil(C·b/32)], scales f32 [R, G], zeros i8
// [R, G] (empty: symmetric), groups by groupOf i32 [C] (empty: contiguous groups of groupSize).
struct DequantizePackedOp {
  static constexpr const char* kName = "dequantizePacked";
  TensorView packed, scales, zeros, groupOf, out;
  int bits = 4;
  int64_t groupSize = 128;
  template <class V> void visit(V&& v) {
    v("packed", packed), v("bits", bits), v("scales", scales), v("zeros", zeros), v("groupOf", groupOf),
        v("groupSize", groupSize), v("out", out);
  }
  void check() const { checkDequantizePacked(packed, bits, scales, zeros, groupOf, groupSize, out); }
};

// ---------------------------------------------------------------- transformer building blocks (f32)

// out[t] = table[ids[t]] for ids i32 [T], table [V, D]; an id outside 0..V-1 is an error.
struct EmbeddingOp {
  static constexpr const char* kName = "embedding";
  TensorView table, ids, out;
  template <class V> void visit(V&& v) { v("table", table), v("ids", ids), v("out", out); }
  void check() const { checkEmbedding(table, ids, out); }
};

// Normalizes each row of x [R, D] (out may alias x): RMSNorm or LayerNorm (NormKind); bias only for
// LayerNorm (may be empty).
struct NormOp {
  static constexpr const char* kName = "norm";
  NormKind kind = NormKind::Rms;
  TensorView x, weight, bias, out;
  double eps = 1e-5;
  template <class V> void visit(V&& v) {
    v("kind", kind), v("x", x), v("weight", weight), v("bias", bias), v("eps", eps), v("out", out);
  }
  void check() const { checkNorm(kind, x, weight, bias, out, eps); }
};

// Rotary embedding in place on x [T, H, d] (rotate-half pairing: i with i + d/2), angle positions[t]·invFreq[i]
// for positions i32 [T], invFreq f32 [d/2].
struct RopeOp {
  static constexpr const char* kName = "rope";
  TensorView x, positions, invFreq;
  template <class V> void visit(V&& v) { v("x", x), v("positions", positions), v("invFreq", invFreq); }
  void check() const { checkRope(x, positions, invFreq); }
};

// Scaled dot-product attention with grouped KV heads: q [T, Hq, d], k and v [S, Hkv, d], out [T, Hq, d]; Hq is a
// multiple of Hkv. Causal: query t sees keys s <= t + (S − T). Never builds the T×S matrix.
struct AttentionOp {
  static constexpr const char* kName = "attention";
  TensorView q, k, v, out;
  double scale = 1;
  bool causal = true;
  template <class V> void visit(V&& f) {
    f("q", q), f("k", k), f("v", v), f("out", out), f("scale", scale), f("causal", causal);
  }
  void check() const { checkAttention(q, k, v, out); }
};

// out = silu(gate) · up (out may alias either).
struct SiluMulOp {
  static constexpr const char* kName = "siluMul";
  TensorView gate, up, out;
  template <class V> void visit(V&& v) { v("gate", gate), v("up", up), v("out", out); }
  void check() const { checkSiluMul(gate, up, out); }
};

// x[r, c] += bias[c] for x [R, C], in place.
struct AddBiasOp {
  static constexpr const char* kName = "addBias";
  TensorView x, bias;
  template <class V> void visit(V&& v) { v("x", x), v("bias", bias); }
  void check() const { checkAddBias(x, bias); }
};

// nll[t] = logsumexp(logits[t]) − logits[t, targets[t]] for logits [T, V], targets i32 [T] (f32 out,
// accumulated in f64).
struct CrossEntropyOp {
  static constexpr const char* kName = "crossEntropy";
  TensorView logits, targets, nll;
  template <class V> void visit(V&& v) { v("logits", logits), v("targets", targets), v("nll", nll); }
  void check() const { checkCrossEntropy(logits, targets, nll); }
};

// out[indices[i]] += weights[i] · rows[i] for rows [N, D], indices i32 [N], weights f32 [N], out [T, D] (the
// weighted scatter-add that brings routed tokens back from their experts).
struct ScatterAddOp {
  static constexpr const char* kName = "scatterAdd";
  TensorView out, rows, indices, weights;
  template <class V> void visit(V&& v) { v("out", out), v("rows", rows), v("indices", indices), v("weights", weights); }
  void check() const { checkScatterAdd(out, rows, indices, weights); }
};

// ---------------------------------------------------------------- backward kernels and an optimizer step (f32)
// "Overwritten" outputs get every element written; "accumulated" ones are added to.

// gradTable[ids[i]] += gradOut[i] for gradOut [N, D] (any leading shape), ids i32 [N], gradTable [V, D].
struct EmbeddingBackwardOp {
  static constexpr const char* kName = "embeddingBackward";
  TensorView gradOut, ids, gradTable;
  template <class V> void visit(V&& v) { v("gradOut", gradOut), v("ids", ids), v("gradTable", gradTable); }
  void check() const { checkEmbeddingBackward(gradOut, ids, gradTable); }
};

// Backward of norm over rows of x [R, D]: gradX overwritten; gradWeight [D] and, for LayerNorm, gradBias [D]
// (may be empty) accumulated.
struct NormBackwardOp {
  static constexpr const char* kName = "normBackward";
  NormKind kind = NormKind::Rms;
  TensorView x, weight, gradOut, gradX, gradWeight, gradBias;
  double eps = 1e-5;
  template <class V> void visit(V&& v) {
    v("kind", kind), v("x", x), v("weight", weight), v("gradOut", gradOut), v("eps", eps), v("out", gradX),
        v("gradWeight", gradWeight), v("gradBias", gradBias);
  }
  void check() const { checkNormBackward(kind, x, weight, gradOut, eps, gradX, gradWeight, gradBias); }
};

// The transpose of rope: rotates grad [T, H, d] in place by −positions[t]·invFreq[i].
struct RopeBackwardOp {
  static constexpr const char* kName = "ropeBackward";
  TensorView grad, positions, invFreq;
  template <class V> void visit(V&& v) { v("grad", grad), v("positions", positions), v("invFreq", invFreq); }
  void check() const { checkRopeBackward(grad, positions, invFreq); }
};

// Gradients of out = attention(q, k, v, scale, causal) given out and gradOut (q's shape); gradQ, gradK and gradV
// (the shapes of q, k, v) overwritten.
struct AttentionBackwardOp {
  static constexpr const char* kName = "attentionBackward";
  TensorView q, k, v, out, gradOut, gradQ, gradK, gradV;
  double scale = 1;
  bool causal = true;
  template <class V> void visit(V&& f) {
    f("q", q), f("k", k), f("v", v), f("out", out), f("gradOut", gradOut), f("outQ", gradQ), f("outK", gradK),
        f("outV", gradV), f("scale", scale), f("causal", causal);
  }
  void check() const { checkAttentionBackward(q, k, v, out, gradOut, gradQ, gradK, gradV, scale); }
};

// Gradients of silu(gate)·up; gradGate and gradUp overwritten (may alias the inputs).
struct SiluMulBackwardOp {
  static constexpr const char* kName = "siluMulBackward";
  TensorView gate, up, gradOut, gradGate, gradUp;
  template <class V> void visit(V&& v) {
    v("gate", gate), v("up", up), v("gradOut", gradOut), v("outGate", gradGate), v("outUp", gradUp);
  }
  void check() const { checkSiluMulBackward(gate, up, gradOut, gradGate, gradUp); }
};

// out = gradOut·f'(x) for f one of Relu, Silu, Gelu, GeluTanh (out may alias x or gradOut).
struct ActivationBackwardOp {
  static constexpr const char* kName = "activationBackward";
  UnaryOp op = UnaryOp::Relu;
  TensorView x, gradOut, out;
  template <class V> void visit(V&& v) { v("op", op), v("x", x), v("gradOut", gradOut), v("out", out); }
  void check() const { checkActivationBackward(op, x, gradOut, out); }
};

// out[c] += Σ_r x[r, c] for x [R, C] (any leading shape), out [C].
struct ColumnSumsOp {
  static constexpr const char* kName = "columnSums";
  TensorView x, out;
  template <class V> void visit(V&& v) { v("x", x), v("out", out); }
  void check() const { checkColumnSums(x, out); }
};

// gradLogits[r] = (softmax(logits[r]) − onehot(targets[r]))·gradNll[r] for logits [N, V], targets i32 [N],
// gradNll [N]; gradLogits [N, V] overwritten (may alias logits).
struct CrossEntropyBackwardOp {
  static constexpr const char* kName = "crossEntropyBackward";
  TensorView logits, targets, gradNll, gradLogits;
  template <class V> void visit(V&& v) {
    v("logits", logits), v("targets", targets), v("gradNll", gradNll), v("out", gradLogits);
  }
  void check() const { checkCrossEntropyBackward(logits, targets, gradNll, gradLogits); }
};

// Backward of scatterAdd: gradRows[i] = weights[i]·gradOut[indices[i]], gradWeights[i] =
// <gradOut[indices[i]], rows[i]>; both overwritten.
struct ScatterAddBackwardOp {
  static constexpr const char* kName = "scatterAddBackward";
  TensorView gradOut, rows, indices, weights, gradRows, gradWeights;
  template <class V> void visit(V&& v) {
    v("gradOut", gradOut), v("rows", rows), v("indices", indices), v("weights", weights), v("outRows", gradRows),
        v("outWeights", gradWeights);
  }
  void check() const { checkScatterAddBackward(gradOut, rows, indices, weights, gradRows, gradWeights); }
};

// One AdamW step in place on param, m and v (PyTorch's torch.optim.AdamW).
struct AdamwStepOp {
  static constexpr const char* kName = "adamwStep";
  TensorView param, grad, m, v;
  AdamwOptions options;
  template <class V> void visit(V&& f) {
    f("param", param), f("grad", grad), f("m", m), f("v", v), f("lr", options.lr), f("beta1", options.beta1),
        f("beta2", options.beta2), f("eps", options.eps), f("weightDecay", options.weightDecay), f("step", options.step);
  }
  void check() const { checkAdamwStep(param, grad, m, v, options); }
};

// ---------------------------------------------------------------- packed formats (packed_formats.h)
// y[T, N] = x[T, K]·Wᵀ (+ bias) with W in a packed format; y is overwritten (bsrLinear may accumulate).

// w [N, K] f32/f16/bf16: the dense baseline (f32 batches go to OpenBLAS).
struct DenseLinearOp {
  static constexpr const char* kName = "denseLinear";
  TensorView x, w, bias, y;
  template <class V> void visit(V&& v) { v("x", x), v("w", w), v("bias", bias), v("y", y); }
  void check() const { checkDenseLinear(x, w, bias, y); }
};

struct Int4LinearOp {
  static constexpr const char* kName = "int4Linear";
  TensorView x, packed, scales, zeros, bias, y;
  int64_t groupSize = 128;
  template <class V> void visit(V&& v) {
    v("x", x), v("packed", packed), v("scales", scales), v("zeros", zeros), v("groupSize", groupSize), v("bias", bias),
        v("y", y);
  }
  void check() const { checkInt4Linear(x, packed, scales, zeros, groupSize, bias, y); }
};

struct Sparse24LinearOp {
  static constexpr const char* kName = "sparse24Linear";
  TensorView x, values, meta, bias, y;
  template <class V> void visit(V&& v) { v("x", x), v("values", values), v("meta", meta), v("bias", bias), v("y", y); }
  void check() const { checkSparse24Linear(x, values, meta, bias, y); }
};

struct Sparse24Int4LinearOp {
  static constexpr const char* kName = "sparse24Int4Linear";
  TensorView x, packed, meta, scales, bias, y;
  int64_t groupSize = 128;
  template <class V> void visit(V&& v) {
    v("x", x), v("packed", packed), v("meta", meta), v("scales", scales), v("groupSize", groupSize), v("bias", bias),
        v("y", y);
  }
  void check() const { checkSparse24Int4Linear(x, packed, meta, scales, groupSize, bias, y); }
};

// accumulate: y += x·Wᵀ instead of y = x·Wᵀ (outliers added onto a base format's output).
struct BsrLinearOp {
  static constexpr const char* kName = "bsrLinear";
  TensorView x, rowPtr, blockCols, values, bias, y;
  int64_t blockSize = 16;
  bool accumulate = false;
  template <class V> void visit(V&& v) {
    v("x", x), v("rowPtr", rowPtr), v("blockCols", blockCols), v("values", values), v("blockSize", blockSize),
        v("bias", bias), v("accumulate", accumulate), v("y", y);
  }
  void check() const { checkBsrLinear(x, rowPtr, blockCols, values, blockSize, bias, y); }
};

struct BsrInt4LinearOp {
  static constexpr const char* kName = "bsrInt4Linear";
  TensorView x, rowPtr, blockCols, packed, blockScales, bias, y;
  int64_t blockSize = 16;
  template <class V> void visit(V&& v) {
    v("x", x), v("rowPtr", rowPtr), v("blockCols", blockCols), v("packed", packed), v("blockScales", blockScales),
        v("blockSize", blockSize), v("bias", bias), v("y", y);
  }
  void check() const { checkBsrInt4Linear(x, rowPtr, blockCols, packed, blockScales, blockSize, bias, y); }
};

// Dense w [N, K] (f32/f16/bf16 values or i8 codes) → its 2:4 values and meta. A group of 4 with more than
// two nonzero entries (bitwise: −0 counts) is an InvalidArgument naming its row and group.
struct Pack24Op {
  static constexpr const char* kName = "pack24";
  TensorView w, values, meta;
  template <class V> void visit(V&& v) { v("w", w), v("values", values), v("meta", meta); }
  void check() const { checkPack24(w, values, meta); }
};

// The inverse of pack24; corrupt meta (a repeated position, a nonzero value past K) is InvalidFile.
struct Unpack24Op {
  static constexpr const char* kName = "unpack24";
  TensorView values, meta, w;
  template <class V> void visit(V&& v) { v("values", values), v("meta", meta), v("w", w); }
  void check() const { checkPack24(w, values, meta); }
};

// rowPtr [N + 1] of the BSR form of w: the prefix sums of each row's blocks holding a nonzero.
struct CountBsrBlocksOp {
  static constexpr const char* kName = "countBsrBlocks";
  TensorView w, rowPtr;
  int64_t blockSize = 16;
  template <class V> void visit(V&& v) { v("w", w), v("blockSize", blockSize), v("rowPtr", rowPtr); }
  void check() const { checkCountBsrBlocks(w, blockSize, rowPtr); }
};

// Fills blockCols and values (w's dtype) of the BSR form of w, given countBsrBlocks' rowPtr.
struct PackBsrOp {
  static constexpr const char* kName = "packBsr";
  TensorView w, rowPtr, blockCols, values;
  int64_t blockSize = 16;
  template <class V> void visit(V&& v) {
    v("w", w), v("blockSize", blockSize), v("rowPtr", rowPtr), v("blockCols", blockCols), v("values", values);
  }
  void check() const { checkBsrTensors(w, blockSize, rowPtr, blockCols, values, kName); }
};

// The inverse of packBsr (zeros between blocks); corrupt block columns are InvalidFile.
struct UnpackBsrOp {
  static constexpr const char* kName = "unpackBsr";
  TensorView rowPtr, blockCols, values, w;
  int64_t blockSize = 16;
  template <class V> void visit(V&& v) {
    v("rowPtr", rowPtr), v("blockCols", blockCols), v("values", values), v("blockSize", blockSize), v("w", w);
  }
  void check() const { checkBsrTensors(w, blockSize, rowPtr, blockCols, values, kName); }
};

// One ALPS ADMM iteration (lib/compress/alps.ts), on [rows, cols] f32 matrices in the scaled basis:
//   R = G − V + ρZ;  B = R·inverse, or ((R·inverse)·diag(factors))·back when factors is not empty;
//   U = B + V/ρ;  support = P(U²) (the `kept` largest over the whole matrix, or with m > 0 the n largest of
//   every m inputs of a row; ties to the lower index);  Z = U on the support, 0 elsewhere;  V ← V + ρB − ρZ.
// Writes b, z, v (in place) and support; work is scratch. result: the entries where support and
// previous differ. No argument may alias another.
struct AlpsAdmmStepOp {
  static constexpr const char* kName = "alpsAdmmStep";
  TensorView g, inverse, factors, back, v, z, b, work, support, previous;
  double rho = 1;
  int64_t kept = 0;
  int n = 0, m = 0;
  double result = 0;
  template <class V> void visit(V&& v_) {
    v_("g", g), v_("inverse", inverse), v_("factors", factors), v_("back", back), v_("rho", rho), v_("kept", kept),
        v_("n", n), v_("m", m), v_("v", v), v_("z", z), v_("b", b), v_("work", work), v_("support", support),
        v_("previous", previous);
  }
  void check() const { checkAlpsAdmmStep(g, inverse, factors, back, rho, kept, n, m, v, z, b, work, support, previous); }
};

// Every op, in the order supportedOps() lists them.
#define SPARQ_OPS(X)                                                                                             \
  X(GemmOp) X(SyrkOp) X(CholeskyOp) X(TrsmOp) X(EighOp) X(DotOp) X(ConvertOp) X(TopkMaskOp) X(NmMaskOp)          \
  X(ThresholdMaskOp) X(ApplyMaskOp) X(AxpyOp) X(ElementwiseUnaryOp) X(ScaleColumnsOp) X(MaskedCgOp) X(ColumnSweepOp)    \
  X(QuantizeRtnOp) X(PackCodesOp) X(UnpackCodesOp) X(DequantizePackedOp) X(EmbeddingOp) X(NormOp) X(RopeOp)      \
  X(AttentionOp) X(SiluMulOp) X(AddBiasOp) X(CrossEntropyOp) X(ScatterAddOp) X(EmbeddingBackwardOp)              \
  X(NormBackwardOp) X(RopeBackwardOp) X(AttentionBackwardOp) X(SiluMulBackwardOp) X(ActivationBackwardOp)        \
  X(ColumnSumsOp) X(CrossEntropyBackwardOp) X(ScatterAddBackwardOp) X(AdamwStepOp) X(DenseLinearOp) X(Int4LinearOp)                \
  X(Sparse24LinearOp) X(Sparse24Int4LinearOp) X(BsrLinearOp) X(BsrInt4LinearOp) X(Pack24Op) X(Unpack24Op)        \
  X(CountBsrBlocksOp) X(PackBsrOp) X(UnpackBsrOp) X(AlpsAdmmStepOp)

}  // namespace sparq

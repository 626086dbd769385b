// The op interface. Every backend (native/cpu, native/cuda) implements all of it; the CPU backend is
// the reference a device backend must match on random inputs. Arguments arrive already validated by
// the checks in ops.h, so implementations only assert what those cannot know (e.g. finiteness).
#pragma once
#include <cstddef>
#include <string>
#include <vector>

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

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual Device device() const = 0;
  virtual std::string description() const = 0;

  // Kernel variants a backend can switch between (the CPU's instruction sets), so that tests and
  // benchmarks can run every code path on one machine. Backends with one variant keep the defaults.
  virtual std::vector<std::string> kernelVariants() const { return {name()}; }
  virtual std::string kernelVariant() const { return name(); }
  virtual void setKernelVariant(const std::string& variant);

  // c = alpha·op(a)·op(b) + beta·c, op = optional transpose; f32 or f64.
  virtual void gemm(const TensorView& a, bool transA, const TensorView& b, bool transB, TensorView& c,
                    double alpha, double beta) = 0;
  // c = alpha·xᵀx + beta·c for x [rows, n], c [n, n], on the lower triangle; with fillUpper the lower
  // triangle is then copied onto the upper one, else the upper one is left as it was. Accumulating
  // many batches lower-only and filling once at the end saves a pass over c per batch.
  virtual void syrk(const TensorView& x, TensorView& c, double alpha, double beta, bool fillUpper) = 0;
  // out = factor or inverse of a + λI (a is read only, unless out aliases it). Climbs the damping
  // ladder while the matrix is not positive definite; throws NotPositiveDefinite past its top.
  virtual CholeskyReport cholesky(const TensorView& a, TensorView& out, const CholeskyOptions& options) = 0;
  // Solves op(t)·x = alpha·b (left) or x·op(t) = alpha·b (right) for triangular t; x overwrites b.
  virtual void trsm(const TensorView& t, TensorView& b, bool lower, bool transT, bool left, bool unitDiagonal,
                    double alpha) = 0;

  // Element type conversion between any float types, and from integers to floats.
  virtual void convert(const TensorView& src, TensorView& dst) = 0;

  // Row-wise selection masks over f32 scores [rows, cols]; mask is u8, 1 = selected.
  // topk: the k largest (or smallest) of each row; ties go to the lower column index.
  virtual void topkMask(const TensorView& scores, int64_t k, bool largest, TensorView& mask) = 0;
  // N:M: the n largest (or smallest) of every m consecutive entries of a row; ties to the lower index.
  virtual void nmMask(const TensorView& scores, int n, int m, bool largest, TensorView& mask) = 0;
  // mask = scores > threshold.
  virtual void thresholdMask(const TensorView& scores, double threshold, TensorView& mask) = 0;
  // out = mask ? x : 0 (out may alias x).
  virtual void applyMask(const TensorView& x, const TensorView& mask, TensorView& out) = 0;

  // y += alpha·x.
  virtual void axpy(double alpha, const TensorView& x, TensorView& y) = 0;
  // out = op(x): copy, |x|, x², a·x, clamp(x, a, b) (out may alias x).
  virtual void unary(UnaryOp op, const TensorView& x, TensorView& out, double a, double b) = 0;

  // Σ a[i]·b[i] accumulated in f64 (f32 or f64 inputs of equal shape); NaN/inf propagate.
  virtual double dot(const TensorView& a, const TensorView& b);
  // Symmetric eigendecomposition of a [n, n] f64 (lower triangle read): values ascending [n], vectors
  // [n, n] with row i the unit eigenvector of values[i].
  virtual void eigh(const TensorView& a, TensorView& values, TensorView& vectors);
  // For every row r of x [m, n] f32 (in place): solve h_SS·x_S = g_S on S = {j : mask[r, j]} by
  // Jacobi-preconditioned CG from the given x, zeroed off S (h [n, n] f32 symmetric positive definite, g [m, n]).
  virtual MaskedCgReport maskedCg(const TensorView& h, const TensorView& g, const TensorView& mask, TensorView& x,
                                  const MaskedCgOptions& options);
  // out[r, c] = x[r, c]·scale[c] for x [R, C] f32, scale f32 [C] (out may alias x).
  virtual void scaleColumns(const TensorView& x, const TensorView& scale, TensorView& out);
  // The column sweep (SweepOptions) on w [rows, cols] f32 in place, given U [cols, cols] f32, the upper
  // Cholesky factor of the damped inverse Hessian (H⁻¹ = UᵀU; only the upper triangle is read).
  virtual void columnSweep(TensorView& w, const TensorView& hinvUpper, const SweepOptions& options);

  // ---- integer quantization on the grid of core/quant.h ----
  // Round to nearest: scales f32 [R, G] and zeros i8 [R, G] from each group's range, codes i8 [R, C], and
  // the decoded weights out f32 [R, C] (may alias w). groupOf i32 [C] (may be empty) assigns columns to
  // groups; otherwise group g is columns [g·groupSize, (g+1)·groupSize).
  virtual void quantizeRtn(const TensorView& w, const QuantGrid& grid, const TensorView& groupOf, TensorView& codes,
                           TensorView& scales, TensorView& zeros, TensorView& out);
  // codes i8 [R, C] of b bits → words i32 [R, ceil(C·b/32)]: code + 2^(b−1) at bit i·b of the row (element
  // 0 in the low bits, values crossing word boundaries when b does not divide 32), unused bits 0.
  virtual void packCodes(const TensorView& codes, int bits, TensorView& packed);
  // The inverse of packCodes.
  virtual void unpackCodes(const TensorView& packed, int bits, TensorView& codes);
  // out f32 [R, C] = (code − zero)·scale for packed codes i32 [R, ceil(C·b/32)], scales f32 [R, G], zeros
  // i8 [R, G] (empty: symmetric), groups by groupOf i32 [C] (empty: contiguous groups of groupSize).
  virtual void dequantizePacked(const TensorView& packed, int bits, const TensorView& scales, const TensorView& zeros,
                                const TensorView& groupOf, int64_t groupSize, TensorView& out);

  // ---- transformer building blocks (f32). Backends that lack one throw BackendUnavailable. ----
  // out[t] = table[ids[t]] for ids i32 [T], table [V, D]; an id outside 0..V-1 is an error.
  virtual void embedding(const TensorView& table, const TensorView& ids, TensorView& out);
  // Normalizes each row of x [R, D] (out may alias x); bias only for LayerNorm (may be empty).
  virtual void norm(NormKind kind, const TensorView& x, const TensorView& weight, const TensorView& bias, double eps,
                    TensorView& out);
  // Rotary embedding in place on x [T, H, d] (rotate-half pairing: i with i + d/2), angle
  // positions[t]·invFreq[i] for positions i32 [T], invFreq f32 [d/2].
  virtual void rope(TensorView& x, const TensorView& positions, const TensorView& invFreq);
  // Scaled dot-product attention with grouped KV heads: q [T, Hq, d], k and v [S, Hkv, d], out [T, Hq, d];
  // Hq is a multiple of Hkv. Causal: query t sees keys s <= t + (S − T). Never builds the T×S matrix.
  virtual void attention(const TensorView& q, const TensorView& k, const TensorView& v, TensorView& out, double scale,
                         bool causal);
  // out = silu(gate) · up (out may alias either).
  virtual void siluMul(const TensorView& gate, const TensorView& up, TensorView& out);
  // x[r, c] += bias[c] for x [R, C], in place.
  virtual void addBias(TensorView& x, const TensorView& bias);
  // nll[t] = logsumexp(logits[t]) − logits[t, targets[t]] for logits [T, V], targets i32 [T] (f32 out,
  // accumulated in f64).
  virtual void crossEntropy(const TensorView& logits, const TensorView& targets, TensorView& nll);
  // out[indices[i]] += weights[i] · rows[i] for rows [N, D], indices i32 [N], weights f32 [N], out [T, D]
  // (the weighted scatter-add that brings routed tokens back from their experts).
  virtual void scatterAdd(TensorView& out, const TensorView& rows, const TensorView& indices, const TensorView& weights);

  // ---- backward kernels of the building blocks above, and an optimizer step (f32). "Overwritten" outputs
  // get every element written; "accumulated" ones are added to. Backends that lack one throw
  // BackendUnavailable. ----
  // gradTable[ids[i]] += gradOut[i] for gradOut [N, D] (any leading shape), ids i32 [N], gradTable [V, D].
  virtual void embeddingBackward(const TensorView& gradOut, const TensorView& ids, TensorView& gradTable);
  // Backward of norm() over rows of x [R, D]: gradX overwritten; gradWeight [D] and, for LayerNorm, gradBias
  // [D] (may be empty) accumulated.
  virtual void normBackward(NormKind kind, const TensorView& x, const TensorView& weight, const TensorView& gradOut,
                            double eps, TensorView& gradX, TensorView& gradWeight, TensorView& gradBias);
  // The transpose of rope(): rotates grad [T, H, d] in place by −positions[t]·invFreq[i].
  virtual void ropeBackward(TensorView& grad, const TensorView& positions, const TensorView& invFreq);
  // Gradients of out = attention(q, k, v, scale, causal) given out and gradOut (q's shape); gradQ, gradK and
  // gradV (the shapes of q, k, v) overwritten.
  virtual void attentionBackward(const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& out,
                                 const TensorView& gradOut, TensorView& gradQ, TensorView& gradK, TensorView& gradV,
                                 double scale, bool causal);
  // Gradients of silu(gate)·up; gradGate and gradUp overwritten (may alias the inputs).
  virtual void siluMulBackward(const TensorView& gate, const TensorView& up, const TensorView& gradOut,
                               TensorView& gradGate, TensorView& gradUp);
  // out = gradOut·f'(x) for f one of Relu, Silu, Gelu, GeluTanh (out may alias x or gradOut).
  virtual void activationBackward(UnaryOp op, const TensorView& x, const TensorView& gradOut, TensorView& out);
  // out[c] += Σ_r x[r, c] for x [R, C] (any leading shape), out [C].
  virtual void columnSums(const TensorView& x, TensorView& out);
  // gradLogits[r] = (softmax(logits[r]) − onehot(targets[r]))·gradNll[r] for logits [N, V], targets i32 [N],
  // gradNll [N]; gradLogits [N, V] overwritten (may alias logits).
  virtual void crossEntropyBackward(const TensorView& logits, const TensorView& targets, const TensorView& gradNll,
                                    TensorView& gradLogits);
  // Backward of scatterAdd: gradRows[i] = weights[i]·gradOut[indices[i]], gradWeights[i] =
  // <gradOut[indices[i]], rows[i]>; both overwritten.
  virtual void scatterAddBackward(const TensorView& gradOut, const TensorView& rows, const TensorView& indices,
                                  const TensorView& weights, TensorView& gradRows, TensorView& gradWeights);
  // One AdamW step in place on param, m and v (PyTorch's torch.optim.AdamW).
  virtual void adamwStep(TensorView& param, const TensorView& grad, TensorView& m, TensorView& v,
                         const AdamwOptions& options);

  // Device memory; the CPU backend's tensors live in JavaScript memory and never call these.
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* ptr) = 0;
  virtual void copyToDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual void copyToHost(void* dst, const void* src, size_t bytes) = 0;
  virtual void synchronize() = 0;
};

// Each addon defines this: the backend its bindings dispatch to.
Backend& addonBackend();

}  // namespace sparq

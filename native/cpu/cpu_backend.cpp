// The CPU backend: dispatch only. The math lives in linalg.cpp (OpenBLAS/LAPACK), convert.cpp,
// mask.cpp and elementwise.cpp.
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "alps.h"
#include "convert.h"
#include "core/backend.h"
#include "core/pool.h"
#include "elementwise.h"
#include "isa.h"
#include "linalg.h"
#include "mask.h"
#include "nn.h"
#include "nn_backward.h"
#include "column_sweep.h"
#include "quant.h"

namespace sparq::cpu {

class CpuBackend final : public Backend {
 public:
  CpuBackend() { ThreadPool::instance().setThreadCountListener(setBlasThreads); }

  const char* name() const override { return "cpu"; }
  Device device() const override { return Device::CPU; }
  std::string description() const override {
    return std::string("cpu: ") + isaName(activeIsa()) + " kernels, " + std::to_string(ThreadPool::instance().threads()) +
           " threads, OpenBLAS";
  }
  std::vector<std::string> kernelVariants() const override {
    std::vector<std::string> variants;
    for (int level = 0; level <= static_cast<int>(detectedIsa()); ++level) variants.push_back(isaName(static_cast<Isa>(level)));
    return variants;
  }
  std::string kernelVariant() const override { return isaName(activeIsa()); }
  void setKernelVariant(const std::string& variant) override { setIsa(parseIsa(variant)); }

  void gemm(const TensorView& a, bool transA, const TensorView& b, bool transB, TensorView& c, double alpha,
            double beta) override {
    cpu::gemm(a, transA, b, transB, c, alpha, beta);
  }
  void syrk(const TensorView& x, TensorView& c, double alpha, double beta, bool fillUpper) override {
    cpu::syrk(x, c, alpha, beta, fillUpper);
  }
  CholeskyReport cholesky(const TensorView& a, TensorView& out, const CholeskyOptions& options) override {
    return cpu::cholesky(a, out, options);
  }
  void trsm(const TensorView& t, TensorView& b, bool lower, bool transT, bool left, bool unitDiagonal,
            double alpha) override {
    cpu::trsm(t, b, lower, transT, left, unitDiagonal, alpha);
  }
  void convert(const TensorView& src, TensorView& dst) override { cpu::convert(src, dst); }
  void topkMask(const TensorView& scores, int64_t k, bool largest, TensorView& mask) override {
    cpu::topkMask(scores, k, largest, mask);
  }
  void eigh(const TensorView& a, TensorView& values, TensorView& vectors) override { cpu::eigh(a, values, vectors); }
  MaskedCgReport maskedCg(const TensorView& h, const TensorView& g, const TensorView& mask, TensorView& x,
                          const MaskedCgOptions& options) override {
    return cpu::maskedCg(h, g, mask, x, options);
  }
  void scaleColumns(const TensorView& x, const TensorView& scale, TensorView& out) override {
    cpu::scaleColumns(x, scale, out);
  }
  double dot(const TensorView& a, const TensorView& b) override { return cpu::dot(a, b); }
  void columnSweep(TensorView& w, const TensorView& hinvUpper, const SweepOptions& options) override {
    cpu::columnSweep(w, hinvUpper, options);
  }
  void quantizeRtn(const TensorView& w, const QuantGrid& grid, const TensorView& groupOf, TensorView& codes,
                   TensorView& scales, TensorView& zeros, TensorView& out) override {
    cpu::quantizeRtn(w, grid, groupOf, codes, scales, zeros, out);
  }
  void packCodes(const TensorView& codes, int bits, TensorView& packed) override { cpu::packCodes(codes, bits, packed); }
  void unpackCodes(const TensorView& packed, int bits, TensorView& codes) override { cpu::unpackCodes(packed, bits, codes); }
  void dequantizePacked(const TensorView& packed, int bits, const TensorView& scales, const TensorView& zeros,
                        const TensorView& groupOf, int64_t groupSize, TensorView& out) override {
    cpu::dequantizePacked(packed, bits, scales, zeros, groupOf, groupSize, out);
  }
  void nmMask(const TensorView& scores, int n, int m, bool largest, TensorView& mask) override {
    cpu::nmMask(scores, n, m, largest, mask);
  }
  void thresholdMask(const TensorView& scores, double threshold, TensorView& mask) override {
    cpu::thresholdMask(scores, threshold, mask);
  }
  void applyMask(const TensorView& x, const TensorView& mask, TensorView& out) override { cpu::applyMask(x, mask, out); }
  void axpy(double alpha, const TensorView& x, TensorView& y) override { cpu::axpy(alpha, x, y); }
  void unary(UnaryOp op, const TensorView& x, TensorView& out, double a, double b) override {
    cpu::unary(op, x, out, a, b);
  }

  void embedding(const TensorView& table, const TensorView& ids, TensorView& out) override {
    cpu::embedding(table, ids, out);
  }
  void norm(NormKind kind, const TensorView& x, const TensorView& weight, const TensorView& bias, double eps,
            TensorView& out) override {
    cpu::norm(kind, x, weight, bias, eps, out);
  }
  void rope(TensorView& x, const TensorView& positions, const TensorView& invFreq) override {
    cpu::rope(x, positions, invFreq);
  }
  void attention(const TensorView& q, const TensorView& k, const TensorView& v, TensorView& out, double scale,
                 bool causal) override {
    cpu::attention(q, k, v, out, scale, causal);
  }
  void siluMul(const TensorView& gate, const TensorView& up, TensorView& out) override { cpu::siluMul(gate, up, out); }
  void addBias(TensorView& x, const TensorView& bias) override { cpu::addBias(x, bias); }
  void crossEntropy(const TensorView& logits, const TensorView& targets, TensorView& nll) override {
    cpu::crossEntropy(logits, targets, nll);
  }
  void scatterAdd(TensorView& out, const TensorView& rows, const TensorView& indices, const TensorView& weights) override {
    cpu::scatterAdd(out, rows, indices, weights);
  }

  void embeddingBackward(const TensorView& gradOut, const TensorView& ids, TensorView& gradTable) override {
    cpu::embeddingBackward(gradOut, ids, gradTable);
  }
  void normBackward(NormKind kind, const TensorView& x, const TensorView& weight, const TensorView& gradOut, double eps,
                    TensorView& gradX, TensorView& gradWeight, TensorView& gradBias) override {
    cpu::normBackward(kind, x, weight, gradOut, eps, gradX, gradWeight, gradBias);
  }
  void ropeBackward(TensorView& grad, const TensorView& positions, const TensorView& invFreq) override {
    cpu::ropeBackward(grad, positions, invFreq);
  }
  void attentionBackward(const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& out,
                         const TensorView& gradOut, TensorView& gradQ, TensorView& gradK, TensorView& gradV, double scale,
                         bool causal) override {
    cpu::attentionBackward(q, k, v, out, gradOut, gradQ, gradK, gradV, scale, causal);
  }
  void siluMulBackward(const TensorView& gate, const TensorView& up, const TensorView& gradOut, TensorView& gradGate,
                       TensorView& gradUp) override {
    cpu::siluMulBackward(gate, up, gradOut, gradGate, gradUp);
  }
  void activationBackward(UnaryOp op, const TensorView& x, const TensorView& gradOut, TensorView& out) override {
    cpu::activationBackward(op, x, gradOut, out);
  }
  void columnSums(const TensorView& x, TensorView& out) override { cpu::columnSums(x, out); }
  void crossEntropyBackward(const TensorView& logits, const TensorView& targets, const TensorView& gradNll,
                            TensorView& gradLogits) override {
    cpu::crossEntropyBackward(logits, targets, gradNll, gradLogits);
  }
  void scatterAddBackward(const TensorView& gradOut, const TensorView& rows, const TensorView& indices,
                          const TensorView& weights, TensorView& gradRows, TensorView& gradWeights) override {
    cpu::scatterAddBackward(gradOut, rows, indices, weights, gradRows, gradWeights);
  }
  void adamwStep(TensorView& param, const TensorView& grad, TensorView& m, TensorView& v,
                 const AdamwOptions& options) override {
    cpu::adamwStep(param, grad, m, v, options);
  }

  // CPU tensors live in JavaScript memory; these serve only code that asks for scratch host memory.
  void* allocate(size_t bytes) override {
    void* p = std::malloc(bytes == 0 ? 1 : bytes);
    SPARQ_CHECK(p != nullptr, ErrorCode::AllocationFailed, "could not allocate " + std::to_string(bytes) + " bytes");
    return p;
  }
  void release(void* ptr) override { std::free(ptr); }
  void copyToDevice(void* dst, const void* src, size_t bytes) override { memcpy(dst, src, bytes); }
  void copyToHost(void* dst, const void* src, size_t bytes) override { memcpy(dst, src, bytes); }
  void synchronize() override {}
};

}  // namespace sparq::cpu

namespace sparq {

Backend& addonBackend() {
  static cpu::CpuBackend backend;
  return backend;
}

}  // namespace sparq

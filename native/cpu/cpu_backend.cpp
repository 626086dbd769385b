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
#include "packed_linear.h"
#include "column_sweep.h"
#include "quant.h"

namespace sparq::cpu {

class CpuBackend final : public Backend {
 public:
  CpuBackend() {
    ThreadPool::instance().setThreadCountListener(setBlasThreads);
    provideKernels();
  }

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

 private:
  // Every row of the op table, each a call into the cpu:: function that does the work.
  void provideKernels() {
    provide<GemmOp>([](GemmOp& o) { gemm(o.a, o.transA, o.b, o.transB, o.c, o.alpha, o.beta); });
    provide<SyrkOp>([](SyrkOp& o) { syrk(o.x, o.c, o.alpha, o.beta, o.fillUpper); });
    provide<CholeskyOp>([](CholeskyOp& o) { o.result = cholesky(o.a, o.out, o.options); });
    provide<TrsmOp>([](TrsmOp& o) { trsm(o.t, o.b, o.lower, o.transT, o.left, o.unitDiagonal, o.alpha); });
    provide<EighOp>([](EighOp& o) { eigh(o.a, o.values, o.vectors); });
    provide<DotOp>([](DotOp& o) { o.result = dot(o.a, o.b); });
    provide<ConvertOp>([](ConvertOp& o) { convert(o.src, o.dst); });
    provide<TopkMaskOp>([](TopkMaskOp& o) { topkMask(o.scores, o.k, o.largest, o.mask); });
    provide<NmMaskOp>([](NmMaskOp& o) { nmMask(o.scores, o.n, o.m, o.largest, o.mask); });
    provide<ThresholdMaskOp>([](ThresholdMaskOp& o) { thresholdMask(o.scores, o.threshold, o.mask); });
    provide<ApplyMaskOp>([](ApplyMaskOp& o) { applyMask(o.x, o.mask, o.out); });
    provide<AxpyOp>([](AxpyOp& o) { axpy(o.alpha, o.x, o.y); });
    provide<ElementwiseUnaryOp>([](ElementwiseUnaryOp& o) { unary(o.op, o.x, o.out, o.a, o.b); });
    provide<ScaleColumnsOp>([](ScaleColumnsOp& o) { scaleColumns(o.x, o.scale, o.out); });
    provide<MaskedCgOp>([](MaskedCgOp& o) { o.result = maskedCg(o.h, o.g, o.mask, o.x, o.options); });
    provide<ColumnSweepOp>([](ColumnSweepOp& o) { columnSweep(o.w, o.hinvUpper, o.options); });
    provide<QuantizeRtnOp>(
        [](QuantizeRtnOp& o) { quantizeRtn(o.w, o.grid, o.groupOf, o.codes, o.scales, o.zeros, o.out); });
    provide<PackCodesOp>([](PackCodesOp& o) { packCodes(o.codes, o.bits, o.packed); });
    provide<UnpackCodesOp>([](UnpackCodesOp& o) { unpackCodes(o.packed, o.bits, o.codes); });
    provide<DequantizePackedOp>([](DequantizePackedOp& o) {
      dequantizePacked(o.packed, o.bits, o.scales, o.zeros, o.groupOf, o.groupSize, o.out);
    });
    provide<EmbeddingOp>([](EmbeddingOp& o) { embedding(o.table, o.ids, o.out); });
    provide<NormOp>([](NormOp& o) { norm(o.kind, o.x, o.weight, o.bias, o.eps, o.out); });
    provide<RopeOp>([](RopeOp& o) { rope(o.x, o.positions, o.invFreq); });
    provide<AttentionOp>([](AttentionOp& o) { attention(o.q, o.k, o.v, o.out, o.scale, o.causal); });
    provide<SiluMulOp>([](SiluMulOp& o) { siluMul(o.gate, o.up, o.out); });
    provide<AddBiasOp>([](AddBiasOp& o) { addBias(o.x, o.bias); });
    provide<CrossEntropyOp>([](CrossEntropyOp& o) { crossEntropy(o.logits, o.targets, o.nll); });
    provide<ScatterAddOp>([](ScatterAddOp& o) { scatterAdd(o.out, o.rows, o.indices, o.weights); });
    provide<EmbeddingBackwardOp>([](EmbeddingBackwardOp& o) { embeddingBackward(o.gradOut, o.ids, o.gradTable); });
    provide<NormBackwardOp>([](NormBackwardOp& o) {
      normBackward(o.kind, o.x, o.weight, o.gradOut, o.eps, o.gradX, o.gradWeight, o.gradBias);
    });
    provide<RopeBackwardOp>([](RopeBackwardOp& o) { ropeBackward(o.grad, o.positions, o.invFreq); });
    provide<AttentionBackwardOp>([](AttentionBackwardOp& o) {
      attentionBackward(o.q, o.k, o.v, o.out, o.gradOut, o.gradQ, o.gradK, o.gradV, o.scale, o.causal);
    });
    provide<SiluMulBackwardOp>(
        [](SiluMulBackwardOp& o) { siluMulBackward(o.gate, o.up, o.gradOut, o.gradGate, o.gradUp); });
    provide<ActivationBackwardOp>([](ActivationBackwardOp& o) { activationBackward(o.op, o.x, o.gradOut, o.out); });
    provide<ColumnSumsOp>([](ColumnSumsOp& o) { columnSums(o.x, o.out); });
    provide<CrossEntropyBackwardOp>([](CrossEntropyBackwardOp& o) {
      crossEntropyBackward(o.logits, o.targets, o.gradNll, o.gradLogits);
    });
    provide<ScatterAddBackwardOp>([](ScatterAddBackwardOp& o) {
      scatterAddBackward(o.gradOut, o.rows, o.indices, o.weights, o.gradRows, o.gradWeights);
    });
    provide<AdamwStepOp>([](AdamwStepOp& o) { adamwStep(o.param, o.grad, o.m, o.v, o.options); });
    provide<DenseLinearOp>([](DenseLinearOp& o) { denseLinear(o.x, o.w, o.bias, o.y); });
    provide<Int4LinearOp>(
        [](Int4LinearOp& o) { int4Linear(o.x, o.packed, o.scales, o.zeros, o.groupSize, o.bias, o.y); });
    provide<Sparse24LinearOp>([](Sparse24LinearOp& o) { sparse24Linear(o.x, o.values, o.meta, o.bias, o.y); });
    provide<Sparse24Int4LinearOp>([](Sparse24Int4LinearOp& o) {
      sparse24Int4Linear(o.x, o.packed, o.meta, o.scales, o.groupSize, o.bias, o.y);
    });
    provide<BsrLinearOp>([](BsrLinearOp& o) {
      bsrLinear(o.x, o.rowPtr, o.blockCols, o.values, o.blockSize, o.bias, o.accumulate, o.y);
    });
    provide<BsrInt4LinearOp>([](BsrInt4LinearOp& o) {
      bsrInt4Linear(o.x, o.rowPtr, o.blockCols, o.packed, o.blockScales, o.blockSize, o.bias, o.y);
    });
    provide<Pack24Op>([](Pack24Op& o) { pack24(o.w, o.values, o.meta); });
    provide<Unpack24Op>([](Unpack24Op& o) { unpack24(o.values, o.meta, o.w); });
    provide<CountBsrBlocksOp>([](CountBsrBlocksOp& o) { countBsrBlocks(o.w, o.blockSize, o.rowPtr); });
    provide<PackBsrOp>([](PackBsrOp& o) { packBsr(o.w, o.blockSize, o.rowPtr, o.blockCols, o.values); });
    provide<UnpackBsrOp>([](UnpackBsrOp& o) { unpackBsr(o.rowPtr, o.blockCols, o.values, o.blockSize, o.w); });
    provide<AlpsAdmmStepOp>([](AlpsAdmmStepOp& o) {
      o.result = alpsAdmmStep(o.g, o.inverse, o.factors, o.back, o.rho, o.kept, o.n, o.m, o.v, o.z, o.b, o.work,
                              o.support, o.previous);
    });
  }
};

}  // namespace sparq::cpu

namespace sparq {

Backend& addonBackend() {
  static cpu::CpuBackend backend;
  return backend;
}

}  // namespace sparq

#include "backend.h"

namespace sparq {

void Backend::setKernelVariant(const std::string& variant) {
  SPARQ_CHECK(variant == kernelVariant(), ErrorCode::InvalidArgument,
          std::string("the ") + name() + " backend has no kernel variant '" + variant + "'");
}

namespace {
[[noreturn]] void unsupported(const Backend& backend, const char* op) {
  fail(ErrorCode::BackendUnavailable, std::string(op) + " runs on CPU tensors only for now: the " + backend.name() +
                                          " backend has no kernel for it");
}
}  // namespace

double Backend::dot(const TensorView&, const TensorView&) { unsupported(*this, "dot"); }
void Backend::eigh(const TensorView&, TensorView&, TensorView&) { unsupported(*this, "eigh"); }
MaskedCgReport Backend::maskedCg(const TensorView&, const TensorView&, const TensorView&, TensorView&,
                                 const MaskedCgOptions&) {
  unsupported(*this, "maskedCg");
}
void Backend::scaleColumns(const TensorView&, const TensorView&, TensorView&) { unsupported(*this, "scaleColumns"); }
void Backend::columnSweep(TensorView&, const TensorView&, const SweepOptions&) { unsupported(*this, "columnSweep"); }
void Backend::quantizeRtn(const TensorView&, const QuantGrid&, const TensorView&, TensorView&, TensorView&, TensorView&,
                          TensorView&) {
  unsupported(*this, "quantizeRtn");
}
void Backend::packCodes(const TensorView&, int, TensorView&) { unsupported(*this, "packCodes"); }
void Backend::unpackCodes(const TensorView&, int, TensorView&) { unsupported(*this, "unpackCodes"); }
void Backend::dequantizePacked(const TensorView&, int, const TensorView&, const TensorView&, const TensorView&, int64_t,
                               TensorView&) {
  unsupported(*this, "dequantizePacked");
}
void Backend::embedding(const TensorView&, const TensorView&, TensorView&) { unsupported(*this, "embedding"); }
void Backend::norm(NormKind, const TensorView&, const TensorView&, const TensorView&, double, TensorView&) {
  unsupported(*this, "norm");
}
void Backend::rope(TensorView&, const TensorView&, const TensorView&) { unsupported(*this, "rope"); }
void Backend::attention(const TensorView&, const TensorView&, const TensorView&, TensorView&, double, bool) {
  unsupported(*this, "attention");
}
void Backend::siluMul(const TensorView&, const TensorView&, TensorView&) { unsupported(*this, "siluMul"); }
void Backend::addBias(TensorView&, const TensorView&) { unsupported(*this, "addBias"); }
void Backend::crossEntropy(const TensorView&, const TensorView&, TensorView&) { unsupported(*this, "crossEntropy"); }
void Backend::scatterAdd(TensorView&, const TensorView&, const TensorView&, const TensorView&) {
  unsupported(*this, "scatterAdd");
}
void Backend::embeddingBackward(const TensorView&, const TensorView&, TensorView&) {
  unsupported(*this, "embeddingBackward");
}
void Backend::normBackward(NormKind, const TensorView&, const TensorView&, const TensorView&, double, TensorView&,
                           TensorView&, TensorView&) {
  unsupported(*this, "normBackward");
}
void Backend::ropeBackward(TensorView&, const TensorView&, const TensorView&) { unsupported(*this, "ropeBackward"); }
void Backend::attentionBackward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                                const TensorView&, TensorView&, TensorView&, TensorView&, double, bool) {
  unsupported(*this, "attentionBackward");
}
void Backend::siluMulBackward(const TensorView&, const TensorView&, const TensorView&, TensorView&, TensorView&) {
  unsupported(*this, "siluMulBackward");
}
void Backend::activationBackward(UnaryOp, const TensorView&, const TensorView&, TensorView&) {
  unsupported(*this, "activationBackward");
}
void Backend::columnSums(const TensorView&, TensorView&) { unsupported(*this, "columnSums"); }
void Backend::crossEntropyBackward(const TensorView&, const TensorView&, const TensorView&, TensorView&) {
  unsupported(*this, "crossEntropyBackward");
}
void Backend::scatterAddBackward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                                 TensorView&, TensorView&) {
  unsupported(*this, "scatterAddBackward");
}
void Backend::adamwStep(TensorView&, const TensorView&, TensorView&, TensorView&, const AdamwOptions&) {
  unsupported(*this, "adamwStep");
}

}  // namespace sparq

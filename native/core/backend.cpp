#include "backend.h"

namespace sparq {

void Backend::setKernelVariant(const std::string& variant) {
  SPARQ_CHECK(variant == kernelVariant(), ErrorCode::InvalidArgument,
              std::string("the ") + name() + " backend has no kernel variant '" + variant + "'");
}

void failUnsupportedOp(const char* backendName, const char* op) {
  fail(ErrorCode::BackendUnavailable,
       std::string(op) + " runs on CPU tensors only for now: the " + backendName + " backend has no kernel for it");
}

std::vector<std::string> Backend::supportedOps() const {
  std::vector<std::string> names;
#define SPARQ_LIST_IF_SUPPORTED(Op) \
  if (supports<Op>()) names.push_back(Op::kName);
  SPARQ_OPS(SPARQ_LIST_IF_SUPPORTED)
#undef SPARQ_LIST_IF_SUPPORTED
  return names;
}

}  // namespace sparq

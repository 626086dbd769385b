#include "backend.h"

namespace sparq {

void Backend::setKernelVariant(const std::string& variant) {
  SPARQ_CHECK(variant == kernelVariant(), ErrorCode::InvalidArgument,
          std::string("the ") + name() + " backend has no kernel variant '" + variant + "'");
}

}  // namespace sparq

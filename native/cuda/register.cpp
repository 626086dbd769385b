// The backend that the CUDA addon's bindings (native/napi) dispatch to.
#include "cuda_backend.h"

namespace sparq {

Backend& addonBackend() {
  // Built on first use, so loading the addon touches no GPU; if construction throws (BackendUnavailable
  // when there is no usable device), the next call tries again. Never destroyed: releasing cuBLAS and
  // cuSOLVER handles from a static destructor at exit can run after the CUDA runtime has shut down.
  static cuda::CudaBackend* const backend = new cuda::CudaBackend();
  return *backend;
}

}  // namespace sparq

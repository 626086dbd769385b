#include "common.cuh"
#include "kernels.h"

namespace sparq::cuda {

void checkLaunch(const char* what) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    fail(ErrorCode::Internal, std::string(what) + ": kernel launch failed: " + cudaGetErrorString(status));
  }
}

}  // namespace sparq::cuda

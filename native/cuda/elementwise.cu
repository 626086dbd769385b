// Elementwise ops on f32/f64, matching the CPU kernels (clamp keeps NaN, abs maps -0 to +0).
#include "common.cuh"
#include "kernels.h"

namespace sparq::cuda {

namespace {

template <typename T>
__global__ void axpyKernel(T alpha, const T* x, T* y, int64_t count) {
  SPARQ_GRID_STRIDE(i, count) { y[i] += alpha * x[i]; }
}

template <typename T>
__global__ void unaryKernel(UnaryOp op, const T* x, T* out, int64_t count, T a, T b) {
  SPARQ_GRID_STRIDE(i, count) {
    const T v = x[i];
    switch (op) {
      case UnaryOp::Copy: out[i] = v; break;
      case UnaryOp::Abs: out[i] = v < T(0) ? -v : (v == T(0) ? T(0) : v); break;
      case UnaryOp::Square: out[i] = v * v; break;
      case UnaryOp::Scale: out[i] = a * v; break;
      case UnaryOp::Clamp: out[i] = v < a ? a : (v > b ? b : v); break;
      case UnaryOp::Relu: out[i] = v > T(0) ? v : (v != v ? v : T(0)); break;
      case UnaryOp::Silu: out[i] = v / (T(1) + exp(-v)); break;
      case UnaryOp::Gelu: out[i] = T(0.5) * v * (T(1) + erf(v * T(0.70710678118654752440))); break;
      case UnaryOp::GeluTanh:
        out[i] = T(0.5) * v * (T(1) + tanh(T(0.79788456080286535588) * (v + T(0.044715) * v * v * v)));
        break;
    }
  }
}

template <typename T>
void launchUnary(UnaryOp op, const void* x, void* out, int64_t count, double a, double b, cudaStream_t stream) {
  unaryKernel<<<gridFor(count), kThreads, 0, stream>>>(op, static_cast<const T*>(x), static_cast<T*>(out), count,
                                                       static_cast<T>(a), static_cast<T>(b));
}

}  // namespace

void axpy(double alpha, const void* x, void* y, int64_t count, DType dtype, cudaStream_t stream) {
  if (count == 0) return;
  if (dtype == DType::F64) {
    axpyKernel<<<gridFor(count), kThreads, 0, stream>>>(alpha, static_cast<const double*>(x), static_cast<double*>(y), count);
  } else {
    axpyKernel<<<gridFor(count), kThreads, 0, stream>>>(static_cast<float>(alpha), static_cast<const float*>(x),
                                                        static_cast<float*>(y), count);
  }
  checkLaunch("axpy");
}

void unary(UnaryOp op, const void* x, void* out, int64_t count, DType dtype, double a, double b, cudaStream_t stream) {
  if (count == 0) return;
  if (dtype == DType::F64) launchUnary<double>(op, x, out, count, a, b, stream);
  else launchUnary<float>(op, x, out, count, a, b, stream);
  checkLaunch("unary");
}

}  // namespace sparq::cuda

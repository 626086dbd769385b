// The CUDA backend: dispatch only. Dense algebra goes to cuBLAS and cuSOLVER, everything else to our
// kernels (kernels.h). All work runs on one stream that the backend owns, and every op synchronizes it
// before returning, so results are ready when the (possibly asynchronous) JavaScript call completes.
// The backend uses device 0 of those the CUDA runtime shows (CUDA_VISIBLE_DEVICES chooses it).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <string>

#include "core/backend.h"

namespace sparq::cuda {

class CudaBackend final : public Backend {
 public:
  // Throws Error(BackendUnavailable) when no CUDA device can be used.
  CudaBackend();
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  const char* name() const override { return "cuda"; }
  Device device() const override { return Device::CUDA; }
  std::string description() const override;

  void* allocate(size_t bytes) override;
  void release(void* ptr) override;
  void copyToDevice(void* dst, const void* src, size_t bytes) override;
  void copyToHost(void* dst, const void* src, size_t bytes) override;
  void synchronize() override;

 private:
  // Fills the kernel table with the ops below.
  void provideKernels();

  void gemm(const TensorView& a, bool transA, const TensorView& b, bool transB, TensorView& c, double alpha,
            double beta);
  void syrk(const TensorView& x, TensorView& c, double alpha, double beta, bool fillUpper);
  CholeskyReport cholesky(const TensorView& a, TensorView& out, const CholeskyOptions& options);
  void trsm(const TensorView& t, TensorView& b, bool lower, bool transT, bool left, bool unitDiagonal,
            double alpha);

  void convert(const TensorView& src, TensorView& dst);

  void topkMask(const TensorView& scores, int64_t k, bool largest, TensorView& mask);
  void nmMask(const TensorView& scores, int n, int m, bool largest, TensorView& mask);
  void thresholdMask(const TensorView& scores, double threshold, TensorView& mask);
  void applyMask(const TensorView& x, const TensorView& mask, TensorView& out);

  void axpy(double alpha, const TensorView& x, TensorView& y);
  void unary(UnaryOp op, const TensorView& x, TensorView& out, double a, double b);

  // Packed-weight linears (packed.cu); pack24/unpack24 and the BSR converters stay on the CPU backend.
  void denseLinear(const DenseLinearOp& o);
  void int4Linear(const Int4LinearOp& o);
  void sparse24Linear(const Sparse24LinearOp& o);
  void sparse24Int4Linear(const Sparse24Int4LinearOp& o);
  void bsrLinear(const BsrLinearOp& o);
  void bsrInt4Linear(const BsrInt4LinearOp& o);

  // Runs `launch(flag)` with the device flag cleared, waits, and returns the least index a kernel
  // recorded there, or -1 if none did.
  template <typename Launch>
  int64_t firstFlagged(Launch launch);
  // Copies the cuSOLVER info word back (waiting for the stream).
  int readInfo();
  void releaseResources() noexcept;

  int deviceIndex_ = 0;
  cudaDeviceProp properties_{};
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cusolverDnHandle_t solver_ = nullptr;
  int64_t* flag_ = nullptr;  // device: least flagged index (all ones = none)
  int* info_ = nullptr;      // device: cuSOLVER's info output
};

}  // namespace sparq::cuda

// The CUDA backend: dispatch only. Dense algebra goes to cuBLAS and cuSOLVER, everything else to our
// kernels (kernels.h). Matrices are row-major; cuBLAS is column-major, so a row-major matrix is read as
// its transpose: C = A·B becomes Cᵀ = Bᵀ·Aᵀ, and a row-major lower triangle is cuBLAS's upper one.
// Every op runs on the backend's stream and synchronizes before returning, so results are ready when
// the (possibly asynchronous) JavaScript call completes.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/pool.h"
#include "kernels.h"

namespace sparq::cuda {

namespace {

void check(cudaError_t status, const char* call) {
  if (status == cudaSuccess) return;
  const ErrorCode code = status == cudaErrorMemoryAllocation ? ErrorCode::AllocationFailed : ErrorCode::Internal;
  fail(code, std::string(call) + ": " + cudaGetErrorString(status));
}

void check(cublasStatus_t status, const char* call) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  const ErrorCode code = status == CUBLAS_STATUS_ALLOC_FAILED ? ErrorCode::AllocationFailed : ErrorCode::Internal;
  fail(code, std::string(call) + ": " + cublasGetStatusString(status));
}

void check(cusolverStatus_t status, const char* call) {
  if (status == CUSOLVER_STATUS_SUCCESS) return;
  const ErrorCode code = status == CUSOLVER_STATUS_ALLOC_FAILED ? ErrorCode::AllocationFailed : ErrorCode::Internal;
  fail(code, std::string(call) + ": cuSOLVER status " + std::to_string(static_cast<int>(status)));
}

int blasInt(int64_t v, const char* what) {
  if (v > std::numeric_limits<int>::max()) {
    fail(ErrorCode::InvalidArgument, std::string(what) + " = " + std::to_string(v) + " exceeds cuBLAS's index range");
  }
  return static_cast<int>(v);
}

std::string formatNumber(double v) {
  char buffer[32];
  snprintf(buffer, sizeof buffer, "%.3g", v);
  return buffer;
}

// Device scratch that frees itself.
class DeviceScratch {
 public:
  explicit DeviceScratch(size_t bytes) {
    if (bytes) check(cudaMalloc(&ptr_, bytes), "cudaMalloc (scratch)");
  }
  ~DeviceScratch() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
};

}  // namespace

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    int devices = 0;
    const cudaError_t status = cudaGetDeviceCount(&devices);
    if (status != cudaSuccess || devices == 0) {
      fail(ErrorCode::BackendUnavailable, std::string("no usable CUDA device: ") +
                                              (status == cudaSuccess ? "none found" : cudaGetErrorString(status)));
    }
    check(cudaGetDeviceProperties(&properties_, 0), "cudaGetDeviceProperties");
    check(cudaStreamCreate(&stream_), "cudaStreamCreate");
    check(cublasCreate(&blas_), "cublasCreate");
    check(cublasSetStream(blas_, stream_), "cublasSetStream");
    check(cusolverDnCreate(&solver_), "cusolverDnCreate");
    check(cusolverDnSetStream(solver_, stream_), "cusolverDnSetStream");
    check(cudaMalloc(&flag_, sizeof(int64_t)), "cudaMalloc (flag)");
    check(cudaMalloc(&info_, sizeof(int)), "cudaMalloc (info)");
  }

  const char* name() const override { return "cuda"; }
  Device device() const override { return Device::CUDA; }
  std::string description() const override {
    return std::string("cuda: ") + properties_.name + ", sm_" + std::to_string(properties_.major) +
           std::to_string(properties_.minor) + ", " + std::to_string(properties_.totalGlobalMem >> 20) + " MiB";
  }

  void gemm(const TensorView& a, bool transA, const TensorView& b, bool transB, TensorView& c, double alpha,
            double beta) override {
    const int m = blasInt(c.shape[0], "m"), n = blasInt(c.shape[1], "n");
    const int k = blasInt(transA ? a.shape[0] : a.shape[1], "k");
    if (m == 0 || n == 0) return;
    const int lda = blasInt(a.shape[1], "lda"), ldb = blasInt(b.shape[1], "ldb");
    const cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N, opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (c.dtype == DType::F64) {
      check(cublasDgemm(blas_, opB, opA, n, m, k, &alpha, b.as<const double>(), ldb, a.as<const double>(), lda, &beta,
                        c.as<double>(), n),
            "cublasDgemm");
    } else {
      const float fa = static_cast<float>(alpha), fb = static_cast<float>(beta);
      check(cublasSgemm(blas_, opB, opA, n, m, k, &fa, b.as<const float>(), ldb, a.as<const float>(), lda, &fb,
                        c.as<float>(), n),
            "cublasSgemm");
    }
    synchronize();
  }

  void syrk(const TensorView& x, TensorView& c, double alpha, double beta, bool fillUpper) override {
    const int rows = blasInt(x.shape[0], "rows"), n = blasInt(x.shape[1], "n");
    if (n == 0) return;
    // Row-major x [rows, n] is column-major xᵀ [n, rows]: xᵀx = (xᵀ)(xᵀ)ᵀ, an "N" syrk; the row-major
    // lower triangle is the column-major upper one.
    if (c.dtype == DType::F64) {
      check(cublasDsyrk(blas_, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, n, rows, &alpha, x.as<const double>(), n, &beta,
                        c.as<double>(), n),
            "cublasDsyrk");
    } else {
      const float fa = static_cast<float>(alpha), fb = static_cast<float>(beta);
      check(cublasSsyrk(blas_, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, n, rows, &fa, x.as<const float>(), n, &fb,
                        c.as<float>(), n),
            "cublasSsyrk");
    }
    if (fillUpper) cuda::mirrorLower(c.data, n, c.dtype, stream_);
    synchronize();
  }

  CholeskyReport cholesky(const TensorView& a, TensorView& out, const CholeskyOptions& options) override {
    const int64_t n64 = a.shape[0];
    const int n = blasInt(n64, "matrix size");
    CholeskyReport report;
    if (n == 0) return report;
    const size_t bytes = a.bytes();
    const size_t elementSize = dtypeSize(a.dtype);

    const int64_t firstBad = firstFlagged([&](int64_t* flag) { findNonFinite(a.data, n64 * n64, a.dtype, flag, stream_); });
    if (firstBad >= 0) {
      fail(ErrorCode::InvalidArgument, "cholesky: the matrix has a non-finite entry at row " +
                                           std::to_string(firstBad / n64) + ", column " + std::to_string(firstBad % n64));
    }
    // mean(|diag a|): gather the diagonal with a strided copy.
    std::vector<double> diagonal(n);
    double scale = 0;
    if (a.dtype == DType::F64) {
      check(cudaMemcpy2D(diagonal.data(), sizeof(double), a.data, (n + 1) * sizeof(double), sizeof(double), n,
                         cudaMemcpyDeviceToHost),
            "cudaMemcpy2D (diagonal)");
    } else {
      std::vector<float> floats(n);
      check(cudaMemcpy2D(floats.data(), sizeof(float), a.data, (n + 1) * sizeof(float), sizeof(float), n,
                         cudaMemcpyDeviceToHost),
            "cudaMemcpy2D (diagonal)");
      for (int i = 0; i < n; ++i) diagonal[i] = floats[i];
    }
    for (double d : diagonal) scale += std::fabs(d);
    scale /= n;
    if (!(scale > 0) || !std::isfinite(scale)) scale = 1;

    // When out aliases a, keep a pristine copy for the next rung of the ladder.
    DeviceScratch original(out.data == a.data ? bytes : 0);
    const void* source = a.data;
    if (out.data == a.data) {
      check(cudaMemcpyAsync(original.as<void>(), a.data, bytes, cudaMemcpyDeviceToDevice, stream_), "cudaMemcpyAsync");
      source = original.as<void>();
    }
    int workspaceSize = 0;
    if (a.dtype == DType::F64) {
      check(cusolverDnDpotrf_bufferSize(solver_, CUBLAS_FILL_MODE_UPPER, n, out.as<double>(), n, &workspaceSize),
            "cusolverDnDpotrf_bufferSize");
    } else {
      check(cusolverDnSpotrf_bufferSize(solver_, CUBLAS_FILL_MODE_UPPER, n, out.as<float>(), n, &workspaceSize),
            "cusolverDnSpotrf_bufferSize");
    }
    DeviceScratch workspace(static_cast<size_t>(workspaceSize) * elementSize);

    double relative = options.damp;
    int failedPivot = 0;
    for (int attempt = 1; attempt <= options.maxAttempts; ++attempt) {
      throwIfCancelled();
      if (attempt > 1) relative = relative == 0 ? 1e-6 : relative * 10;
      const double lambda = relative * scale;
      check(cudaMemcpyAsync(out.data, source, bytes, cudaMemcpyDeviceToDevice, stream_), "cudaMemcpyAsync");
      addToDiagonal(out.data, n64, a.dtype, lambda, stream_);
      if (a.dtype == DType::F64) {
        check(cusolverDnDpotrf(solver_, CUBLAS_FILL_MODE_UPPER, n, out.as<double>(), n, workspace.as<double>(),
                               workspaceSize, info_),
              "cusolverDnDpotrf");
      } else {
        check(cusolverDnSpotrf(solver_, CUBLAS_FILL_MODE_UPPER, n, out.as<float>(), n, workspace.as<float>(),
                               workspaceSize, info_),
              "cusolverDnSpotrf");
      }
      check(cudaMemcpyAsync(&failedPivot, info_, sizeof(int), cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync (info)");
      synchronize();
      report.attempts = attempt;
      if (failedPivot == 0) {
        report.relativeDamping = relative;
        report.absoluteDamping = lambda;
        break;
      }
    }
    if (failedPivot != 0) {
      fail(ErrorCode::NotPositiveDefinite,
           "cholesky: the " + std::to_string(n) + "x" + std::to_string(n) +
               " matrix is not positive definite even with damping " + formatNumber(relative) + " x mean(diag) = " +
               formatNumber(relative * scale) + " after " + std::to_string(report.attempts) +
               " attempts (the leading minor of order " + std::to_string(failedPivot) + " failed)");
    }
    if (options.inverse) {
      int inverseWorkspace = 0;
      if (a.dtype == DType::F64) {
        check(cusolverDnDpotri_bufferSize(solver_, CUBLAS_FILL_MODE_UPPER, n, out.as<double>(), n, &inverseWorkspace),
              "cusolverDnDpotri_bufferSize");
      } else {
        check(cusolverDnSpotri_bufferSize(solver_, CUBLAS_FILL_MODE_UPPER, n, out.as<float>(), n, &inverseWorkspace),
              "cusolverDnSpotri_bufferSize");
      }
      DeviceScratch inverseScratch(static_cast<size_t>(inverseWorkspace) * elementSize);
      if (a.dtype == DType::F64) {
        check(cusolverDnDpotri(solver_, CUBLAS_FILL_MODE_UPPER, n, out.as<double>(), n, inverseScratch.as<double>(),
                               inverseWorkspace, info_),
              "cusolverDnDpotri");
      } else {
        check(cusolverDnSpotri(solver_, CUBLAS_FILL_MODE_UPPER, n, out.as<float>(), n, inverseScratch.as<float>(),
                               inverseWorkspace, info_),
              "cusolverDnSpotri");
      }
      int info = 0;
      check(cudaMemcpyAsync(&info, info_, sizeof(int), cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync (info)");
      synchronize();
      if (info != 0) {
        fail(ErrorCode::NotPositiveDefinite, "cholesky: the factor is singular at diagonal entry " + std::to_string(info));
      }
      cuda::mirrorLower(out.data, n64, a.dtype, stream_);
    } else {
      finishFactor(out.data, n64, a.dtype, options.upper, stream_);
    }
    synchronize();
    return report;
  }

  void trsm(const TensorView& t, TensorView& b, bool lower, bool transT, bool left, bool unitDiagonal,
            double alpha) override {
    const int m = blasInt(b.shape[0], "rows of b"), n = blasInt(b.shape[1], "columns of b");
    if (m == 0 || n == 0) return;
    // Row-major op(t)·x = alpha·b is column-major xᵀ·op(t)ᵀ = alpha·bᵀ with tᵀ as cuBLAS sees t: the side
    // and the triangle flip, the transpose flag stays.
    const cublasSideMode_t side = left ? CUBLAS_SIDE_RIGHT : CUBLAS_SIDE_LEFT;
    const cublasFillMode_t fill = lower ? CUBLAS_FILL_MODE_UPPER : CUBLAS_FILL_MODE_LOWER;
    const cublasOperation_t op = transT ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasDiagType_t diag = unitDiagonal ? CUBLAS_DIAG_UNIT : CUBLAS_DIAG_NON_UNIT;
    const int ldt = blasInt(t.shape[0], "t's size");
    if (b.dtype == DType::F64) {
      check(cublasDtrsm(blas_, side, fill, op, diag, n, m, &alpha, t.as<const double>(), ldt, b.as<double>(), n),
            "cublasDtrsm");
    } else {
      const float fa = static_cast<float>(alpha);
      check(cublasStrsm(blas_, side, fill, op, diag, n, m, &fa, t.as<const float>(), ldt, b.as<float>(), n),
            "cublasStrsm");
    }
    synchronize();
  }

  void convert(const TensorView& src, TensorView& dst) override {
    cuda::convert(src.data, src.dtype, dst.data, dst.dtype, src.numel(), stream_);
    synchronize();
  }

  void topkMask(const TensorView& scores, int64_t k, bool largest, TensorView& mask) override {
    const int64_t cols = scores.shape[1];
    const int64_t bad = firstFlagged([&](int64_t* flag) {
      cuda::topkMask(scores.as<const float>(), scores.shape[0], cols, k, largest, mask.as<uint8_t>(), flag, stream_);
    });
    failOnNaN("topkMask", bad, cols);
  }

  void nmMask(const TensorView& scores, int n, int m, bool largest, TensorView& mask) override {
    const int64_t cols = scores.shape[1];
    const int64_t bad = firstFlagged([&](int64_t* flag) {
      cuda::nmMask(scores.as<const float>(), scores.shape[0], cols, n, m, largest, mask.as<uint8_t>(), flag, stream_);
    });
    failOnNaN("nmMask", bad, cols);
  }

  void thresholdMask(const TensorView& scores, double threshold, TensorView& mask) override {
    const int64_t bad = firstFlagged([&](int64_t* flag) {
      cuda::thresholdMask(scores.as<const float>(), scores.numel(), static_cast<float>(threshold), mask.as<uint8_t>(),
                          flag, stream_);
    });
    failOnNaN("thresholdMask", bad, scores.cols());
  }

  void applyMask(const TensorView& x, const TensorView& mask, TensorView& out) override {
    cuda::applyMask(x.data, mask.as<const uint8_t>(), out.data, x.numel(), dtypeSize(x.dtype), stream_);
    synchronize();
  }

  void axpy(double alpha, const TensorView& x, TensorView& y) override {
    cuda::axpy(alpha, x.data, y.data, x.numel(), x.dtype, stream_);
    synchronize();
  }

  void unary(UnaryOp op, const TensorView& x, TensorView& out, double a, double b) override {
    if (op == UnaryOp::Clamp && a > b) {
      fail(ErrorCode::InvalidArgument, "clamp: min must not exceed max, got min " + std::to_string(a) + " > max " + std::to_string(b));
    }
    cuda::unary(op, x.data, out.data, x.numel(), x.dtype, a, b, stream_);
    synchronize();
  }

  void* allocate(size_t bytes) override {
    void* ptr = nullptr;
    const cudaError_t status = cudaMalloc(&ptr, bytes);
    if (status != cudaSuccess) {
      fail(ErrorCode::AllocationFailed, "could not allocate " + std::to_string(bytes) + " bytes on " + properties_.name +
                                            ": " + cudaGetErrorString(status));
    }
    return ptr;
  }
  void release(void* ptr) override { check(cudaFree(ptr), "cudaFree"); }
  void copyToDevice(void* dst, const void* src, size_t bytes) override {
    check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy (to device)");
  }
  void copyToHost(void* dst, const void* src, size_t bytes) override {
    check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy (to host)");
  }
  void synchronize() override { check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }

 private:
  // Runs `launch` with a device flag preset to "none", synchronizes, and returns the smallest index the
  // kernels recorded, or -1.
  template <typename Launch>
  int64_t firstFlagged(Launch launch) {
    const int64_t none = std::numeric_limits<int64_t>::max();
    check(cudaMemcpyAsync(flag_, &none, sizeof none, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync (flag)");
    launch(flag_);
    int64_t found = none;
    check(cudaMemcpyAsync(&found, flag_, sizeof found, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync (flag)");
    synchronize();
    return found == none ? -1 : found;
  }

  static void failOnNaN(const char* op, int64_t index, int64_t cols) {
    if (index < 0) return;
    fail(ErrorCode::InvalidArgument, std::string(op) + ": scores contain NaN at row " + std::to_string(index / cols) +
                                         ", column " + std::to_string(index % cols));
  }

  cudaDeviceProp properties_{};
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cusolverDnHandle_t solver_ = nullptr;
  int64_t* flag_ = nullptr;
  int* info_ = nullptr;
};

}  // namespace sparq::cuda

namespace sparq {

Backend& addonBackend() {
  // Constructed on first use; if it throws (no device), the next call tries again.
  static cuda::CudaBackend backend;
  return backend;
}

}  // namespace sparq

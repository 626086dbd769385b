// The CUDA backend's ops (see cuda_backend.h). Matrices are row-major while cuBLAS and cuSOLVER are
// column-major, so a row-major matrix is handed over as its column-major transpose: C = op(A)·op(B)
// becomes Cᵀ = op(B)ᵀ·op(A)ᵀ, and a row-major lower triangle is the column-major upper one.
#include "cuda_backend.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "core/damping.h"
#include "core/pool.h"
#include "kernels.h"

namespace sparq::cuda {

namespace {

// ---- status checks: every failure becomes a sparq::Error naming the call ----------------------------

void check(cudaError_t status, const char* call) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // a non-sticky error must not be reported again by the next launch check
  const ErrorCode code = status == cudaErrorMemoryAllocation ? ErrorCode::AllocationFailed : ErrorCode::Internal;
  fail(code, std::string(call) + ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
}

void check(cublasStatus_t status, const char* call) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  const ErrorCode code = status == CUBLAS_STATUS_ALLOC_FAILED ? ErrorCode::AllocationFailed : ErrorCode::Internal;
  fail(code, std::string(call) + ": " + cublasGetStatusName(status) + " (" + cublasGetStatusString(status) + ")");
}

// cuSOLVER has no status-string function of its own.
const char* solverStatusName(cusolverStatus_t status) {
  switch (status) {
    case CUSOLVER_STATUS_SUCCESS: return "CUSOLVER_STATUS_SUCCESS";
    case CUSOLVER_STATUS_NOT_INITIALIZED: return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED: return "CUSOLVER_STATUS_ALLOC_FAILED";
    case CUSOLVER_STATUS_INVALID_VALUE: return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH: return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_MAPPING_ERROR: return "CUSOLVER_STATUS_MAPPING_ERROR";
    case CUSOLVER_STATUS_EXECUTION_FAILED: return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR: return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED: return "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED";
    case CUSOLVER_STATUS_NOT_SUPPORTED: return "CUSOLVER_STATUS_NOT_SUPPORTED";
    case CUSOLVER_STATUS_INVALID_WORKSPACE: return "CUSOLVER_STATUS_INVALID_WORKSPACE";
    default: return "cuSOLVER error";
  }
}

void check(cusolverStatus_t status, const char* call) {
  if (status == CUSOLVER_STATUS_SUCCESS) return;
  const ErrorCode code = status == CUSOLVER_STATUS_ALLOC_FAILED ? ErrorCode::AllocationFailed : ErrorCode::Internal;
  fail(code, std::string(call) + ": " + solverStatusName(status) + " (status " + std::to_string(static_cast<int>(status)) +
                 ")");
}

int blasInt(int64_t v, const char* what) {
  SPARQ_CHECK(v <= std::numeric_limits<int>::max(), ErrorCode::InvalidArgument,
              std::string(what) + " = " + std::to_string(v) + " exceeds the cuBLAS/cuSOLVER index range (2^31 - 1)");
  return static_cast<int>(v);
}

LinearArgs linearArgs(const TensorView& x, const TensorView& bias, const TensorView& y, bool accumulate) {
  return {x.as<const float>(), y.as<float>(), bias.numel() > 0 ? bias.as<const float>() : nullptr, x.shape[0], x.shape[1],
          y.shape[1], accumulate};
}

[[noreturn]] void failOnNaN(const char* op, int64_t index, int64_t cols) {
  fail(ErrorCode::InvalidArgument, std::string(op) + ": scores contain NaN at row " + std::to_string(index / cols) +
                                       ", column " + std::to_string(index % cols));
}

// Device scratch memory for the length of one op.
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

// ---- lifetime --------------------------------------------------------------------------------------

CudaBackend::CudaBackend() {
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess || devices == 0) {
    cudaGetLastError();
    fail(ErrorCode::BackendUnavailable,
         std::string("no usable CUDA device: ") +
             (status == cudaSuccess ? "the CUDA runtime sees none" : cudaGetErrorString(status)) +
             " (check the NVIDIA driver and CUDA_VISIBLE_DEVICES)");
  }
  try {
    check(cudaSetDevice(deviceIndex_), "cudaSetDevice");
    check(cudaGetDeviceProperties(&properties_, deviceIndex_), "cudaGetDeviceProperties");
    // A blocking stream (not cudaStreamNonBlocking): it also orders itself after work that libraries
    // or other code leave on the legacy default stream.
    check(cudaStreamCreate(&stream_), "cudaStreamCreate");
    check(cublasCreate(&blas_), "cublasCreate");
    check(cublasSetStream(blas_, stream_), "cublasSetStream");
    check(cusolverDnCreate(&solver_), "cusolverDnCreate");
    check(cusolverDnSetStream(solver_, stream_), "cusolverDnSetStream");
    check(cudaMalloc(&flag_, sizeof(int64_t)), "cudaMalloc (flag)");
    check(cudaMalloc(&info_, sizeof(int)), "cudaMalloc (info)");
    provideKernels();
  } catch (const Error& e) {
    releaseResources();
    fail(ErrorCode::BackendUnavailable, std::string("the CUDA backend could not start on device ") +
                                            std::to_string(deviceIndex_) + ": " + e.what());
  }
}

CudaBackend::~CudaBackend() { releaseResources(); }

void CudaBackend::provideKernels() {
  provide<GemmOp>([this](GemmOp& o) { gemm(o.a, o.transA, o.b, o.transB, o.c, o.alpha, o.beta); });
  provide<SyrkOp>([this](SyrkOp& o) { syrk(o.x, o.c, o.alpha, o.beta, o.fillUpper); });
  provide<CholeskyOp>([this](CholeskyOp& o) { o.result = cholesky(o.a, o.out, o.options); });
  provide<TrsmOp>([this](TrsmOp& o) { trsm(o.t, o.b, o.lower, o.transT, o.left, o.unitDiagonal, o.alpha); });
  provide<ConvertOp>([this](ConvertOp& o) { convert(o.src, o.dst); });
  provide<TopkMaskOp>([this](TopkMaskOp& o) { topkMask(o.scores, o.k, o.largest, o.mask); });
  provide<NmMaskOp>([this](NmMaskOp& o) { nmMask(o.scores, o.n, o.m, o.largest, o.mask); });
  provide<ThresholdMaskOp>([this](ThresholdMaskOp& o) { thresholdMask(o.scores, o.threshold, o.mask); });
  provide<ApplyMaskOp>([this](ApplyMaskOp& o) { applyMask(o.x, o.mask, o.out); });
  provide<AxpyOp>([this](AxpyOp& o) { axpy(o.alpha, o.x, o.y); });
  provide<ElementwiseUnaryOp>([this](ElementwiseUnaryOp& o) { unary(o.op, o.x, o.out, o.a, o.b); });
  provide<DenseLinearOp>([this](DenseLinearOp& o) { denseLinear(o); });
  provide<Int4LinearOp>([this](Int4LinearOp& o) { int4Linear(o); });
  provide<Sparse24LinearOp>([this](Sparse24LinearOp& o) { sparse24Linear(o); });
  provide<Sparse24Int4LinearOp>([this](Sparse24Int4LinearOp& o) { sparse24Int4Linear(o); });
  provide<BsrLinearOp>([this](BsrLinearOp& o) { bsrLinear(o); });
  provide<BsrInt4LinearOp>([this](BsrInt4LinearOp& o) { bsrInt4Linear(o); });
}

void CudaBackend::releaseResources() noexcept {
  if (info_) cudaFree(info_);
  if (flag_) cudaFree(flag_);
  if (solver_) cusolverDnDestroy(solver_);
  if (blas_) cublasDestroy(blas_);
  if (stream_) cudaStreamDestroy(stream_);
  info_ = nullptr;
  flag_ = nullptr;
  solver_ = nullptr;
  blas_ = nullptr;
  stream_ = nullptr;
}

std::string CudaBackend::description() const {
  return std::string("cuda: ") + properties_.name + ", sm_" + std::to_string(properties_.major) +
         std::to_string(properties_.minor) + ", " + std::to_string(properties_.totalGlobalMem >> 20) + " MiB";
}

// ---- helpers ---------------------------------------------------------------------------------------

template <typename Launch>
int64_t CudaBackend::firstFlagged(Launch launch) {
  // All-ones bytes: the largest unsigned index, which the kernels' atomicMin only lowers.
  check(cudaMemsetAsync(flag_, 0xFF, sizeof(int64_t), stream_), "cudaMemsetAsync (flag)");
  launch(flag_);
  int64_t found = -1;
  check(cudaMemcpyAsync(&found, flag_, sizeof found, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync (flag)");
  synchronize();
  return found < 0 ? -1 : found;
}

int CudaBackend::readInfo() {
  int info = 0;
  check(cudaMemcpyAsync(&info, info_, sizeof info, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync (info)");
  synchronize();
  return info;
}

// ---- dense linear algebra --------------------------------------------------------------------------

void CudaBackend::gemm(const TensorView& a, bool transA, const TensorView& b, bool transB, TensorView& c,
                       double alpha, double beta) {
  const int64_t m64 = c.shape[0], n64 = c.shape[1];
  const int64_t k64 = transA ? a.shape[0] : a.shape[1];
  if (m64 == 0 || n64 == 0) return;
  throwIfCancelled();
  if (k64 == 0) {
    // An empty product: only beta·c remains (and cuBLAS would reject the zero leading dimensions).
    scaleMatrix(c.data, m64 * n64, c.dtype, beta, stream_);
    synchronize();
    return;
  }
  const int m = blasInt(m64, "rows of c"), n = blasInt(n64, "columns of c"), k = blasInt(k64, "inner dimension");
  const int lda = blasInt(a.shape[1], "a's row length"), ldb = blasInt(b.shape[1], "b's row length");
  // Column-major Cᵀ (n×m, leading dimension n) = op(B)ᵀ·op(A)ᵀ. Row-major B is column-major Bᵀ, so
  // op(B)ᵀ is that stored matrix as is when B is not transposed, and its transpose when it is.
  const cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (c.dtype == DType::F64) {
    check(cublasDgemm(blas_, opB, opA, n, m, k, &alpha, b.as<const double>(), ldb, a.as<const double>(), lda, &beta,
                      c.as<double>(), n),
          "cublasDgemm");
  } else {
    const float alphaF = static_cast<float>(alpha), betaF = static_cast<float>(beta);
    check(cublasSgemm(blas_, opB, opA, n, m, k, &alphaF, b.as<const float>(), ldb, a.as<const float>(), lda, &betaF,
                      c.as<float>(), n),
          "cublasSgemm");
  }
  synchronize();
}

void CudaBackend::syrk(const TensorView& x, TensorView& c, double alpha, double beta, bool fillUpper) {
  const int64_t rows64 = x.shape[0], n64 = x.shape[1];
  if (n64 == 0) return;
  throwIfCancelled();
  if (rows64 == 0) {
    scaleLower(c.data, n64, c.dtype, beta, stream_);
  } else {
    const int rows = blasInt(rows64, "rows of x"), n = blasInt(n64, "columns of x");
    // Row-major x [rows, n] is column-major X = xᵀ [n, rows], and xᵀx = X·Xᵀ: a non-transposed syrk.
    // The row-major lower triangle of c is the column-major upper one.
    if (c.dtype == DType::F64) {
      check(cublasDsyrk(blas_, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, n, rows, &alpha, x.as<const double>(), n, &beta,
                        c.as<double>(), n),
            "cublasDsyrk");
    } else {
      const float alphaF = static_cast<float>(alpha), betaF = static_cast<float>(beta);
      check(cublasSsyrk(blas_, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, n, rows, &alphaF, x.as<const float>(), n, &betaF,
                        c.as<float>(), n),
            "cublasSsyrk");
    }
  }
  if (fillUpper) mirrorLower(c.data, n64, c.dtype, stream_);
  synchronize();
}

CholeskyReport CudaBackend::cholesky(const TensorView& a, TensorView& out, const CholeskyOptions& options) {
  const int64_t n64 = a.shape[0];
  const int n = blasInt(n64, "matrix size");
  CholeskyReport report;
  if (n == 0) return report;
  throwIfCancelled();
  const bool f64 = a.dtype == DType::F64;
  const size_t bytes = a.bytes();
  const size_t elementSize = dtypeSize(a.dtype);

  const int64_t bad = firstFlagged([&](int64_t* flag) { findNonFinite(a.data, n64 * n64, a.dtype, flag, stream_); });
  if (bad >= 0) {
    fail(ErrorCode::InvalidArgument, "cholesky: the matrix has a non-finite entry at row " + std::to_string(bad / n64) +
                                         ", column " + std::to_string(bad % n64));
  }

  // The damping scale, mean(|diag a|), summed on the host in the CPU backend's order so both ladders
  // add exactly the same λ.
  std::vector<double> diagonal(n);
  if (f64) {
    check(cudaMemcpy2DAsync(diagonal.data(), sizeof(double), a.data, (n64 + 1) * sizeof(double), sizeof(double), n,
                            cudaMemcpyDeviceToHost, stream_),
          "cudaMemcpy2DAsync (diagonal)");
    synchronize();
  } else {
    std::vector<float> floats(n);
    check(cudaMemcpy2DAsync(floats.data(), sizeof(float), a.data, (n64 + 1) * sizeof(float), sizeof(float), n,
                            cudaMemcpyDeviceToHost, stream_),
          "cudaMemcpy2DAsync (diagonal)");
    synchronize();
    for (int i = 0; i < n; ++i) diagonal[i] = floats[i];
  }
  double sumAbsDiagonal = 0;
  for (double d : diagonal) sumAbsDiagonal += std::fabs(d);
  DampingLadder ladder(options, sumAbsDiagonal, n64);

  // Every rung starts again from a; if out aliases a, a pristine copy keeps it.
  const bool aliased = out.data == a.data;
  DeviceScratch pristine(aliased ? bytes : 0);
  const void* source = a.data;
  if (aliased) {
    check(cudaMemcpyAsync(pristine.as<void>(), a.data, bytes, cudaMemcpyDeviceToDevice, stream_),
          "cudaMemcpyAsync (pristine copy)");
    source = pristine.as<void>();
  }
  int workspaceElements = 0;
  if (f64) {
    check(cusolverDnDpotrf_bufferSize(solver_, CUBLAS_FILL_MODE_UPPER, n, out.as<double>(), n, &workspaceElements),
          "cusolverDnDpotrf_bufferSize");
  } else {
    check(cusolverDnSpotrf_bufferSize(solver_, CUBLAS_FILL_MODE_UPPER, n, out.as<float>(), n, &workspaceElements),
          "cusolverDnSpotrf_bufferSize");
  }
  DeviceScratch workspace(static_cast<size_t>(workspaceElements) * elementSize);

  int failedPivot = 0;
  while (ladder.next()) {
    throwIfCancelled();
    const double lambda = ladder.lambda();
    check(cudaMemcpyAsync(out.data, source, bytes, cudaMemcpyDeviceToDevice, stream_), "cudaMemcpyAsync (rung copy)");
    addToDiagonal(out.data, n64, a.dtype, lambda, stream_);
    // Column-major upper U with A = UᵀU is the row-major lower L with A = LLᵀ.
    if (f64) {
      check(cusolverDnDpotrf(solver_, CUBLAS_FILL_MODE_UPPER, n, out.as<double>(), n, workspace.as<double>(),
                             workspaceElements, info_),
            "cusolverDnDpotrf");
    } else {
      check(cusolverDnSpotrf(solver_, CUBLAS_FILL_MODE_UPPER, n, out.as<float>(), n, workspace.as<float>(),
                             workspaceElements, info_),
            "cusolverDnSpotrf");
    }
    failedPivot = readInfo();
    SPARQ_CHECK(failedPivot >= 0, ErrorCode::Internal,
                "cusolverDnpotrf rejected argument " + std::to_string(-failedPivot));
    if (failedPivot == 0) break;
  }
  if (failedPivot != 0) ladder.exhausted(failedPivot);
  report = ladder.report();
  throwIfCancelled();

  if (options.inverse) {
    int inverseElements = 0;
    if (f64) {
      check(cusolverDnDpotri_bufferSize(solver_, CUBLAS_FILL_MODE_UPPER, n, out.as<double>(), n, &inverseElements),
            "cusolverDnDpotri_bufferSize");
    } else {
      check(cusolverDnSpotri_bufferSize(solver_, CUBLAS_FILL_MODE_UPPER, n, out.as<float>(), n, &inverseElements),
            "cusolverDnSpotri_bufferSize");
    }
    DeviceScratch inverseWorkspace(static_cast<size_t>(inverseElements) * elementSize);
    if (f64) {
      check(cusolverDnDpotri(solver_, CUBLAS_FILL_MODE_UPPER, n, out.as<double>(), n, inverseWorkspace.as<double>(),
                             inverseElements, info_),
            "cusolverDnDpotri");
    } else {
      check(cusolverDnSpotri(solver_, CUBLAS_FILL_MODE_UPPER, n, out.as<float>(), n, inverseWorkspace.as<float>(),
                             inverseElements, info_),
            "cusolverDnSpotri");
    }
    const int info = readInfo();
    SPARQ_CHECK(info >= 0, ErrorCode::Internal, "cusolverDnpotri rejected argument " + std::to_string(-info));
    SPARQ_CHECK(info == 0, ErrorCode::NotPositiveDefinite,
                "cholesky: the factor is singular at diagonal entry " + std::to_string(info));
    // potri filled the row-major lower triangle of the symmetric inverse.
    mirrorLower(out.data, n64, a.dtype, stream_);
  } else {
    finishFactor(out.data, n64, a.dtype, options.upper, stream_);
  }
  synchronize();
  return report;
}

void CudaBackend::trsm(const TensorView& t, TensorView& b, bool lower, bool transT, bool left, bool unitDiagonal,
                       double alpha) {
  const int64_t m64 = b.shape[0], n64 = b.shape[1];
  if (m64 == 0 || n64 == 0) return;
  throwIfCancelled();
  const int m = blasInt(m64, "rows of b"), n = blasInt(n64, "columns of b");
  const int ldt = blasInt(t.shape[0], "t's size");
  // Row-major b [m, n] is column-major B = bᵀ [n, m], and t is handed over as tᵀ. Transposing
  // op(t)·x = alpha·b gives xᵀ·op(t)ᵀ = alpha·bᵀ: the side flips, a lower t is an upper tᵀ, and
  // op(t)ᵀ is the stored tᵀ untransposed exactly when op(t) = t, so the transpose flag stays.
  const cublasSideMode_t side = left ? CUBLAS_SIDE_RIGHT : CUBLAS_SIDE_LEFT;
  const cublasFillMode_t fill = lower ? CUBLAS_FILL_MODE_UPPER : CUBLAS_FILL_MODE_LOWER;
  const cublasOperation_t op = transT ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasDiagType_t diag = unitDiagonal ? CUBLAS_DIAG_UNIT : CUBLAS_DIAG_NON_UNIT;
  if (b.dtype == DType::F64) {
    check(cublasDtrsm(blas_, side, fill, op, diag, n, m, &alpha, t.as<const double>(), ldt, b.as<double>(), n),
          "cublasDtrsm");
  } else {
    const float alphaF = static_cast<float>(alpha);
    check(cublasStrsm(blas_, side, fill, op, diag, n, m, &alphaF, t.as<const float>(), ldt, b.as<float>(), n),
          "cublasStrsm");
  }
  synchronize();
}

// ---- our kernels -----------------------------------------------------------------------------------

void CudaBackend::convert(const TensorView& src, TensorView& dst) {
  cuda::convert(src.data, src.dtype, dst.data, dst.dtype, src.numel(), stream_);
  synchronize();
}

void CudaBackend::topkMask(const TensorView& scores, int64_t k, bool largest, TensorView& mask) {
  const int64_t rows = scores.shape[0], cols = scores.shape[1];
  const int64_t bad = firstFlagged([&](int64_t* flag) {
    cuda::topkMask(scores.as<const float>(), rows, cols, k, largest, mask.as<uint8_t>(), flag, stream_);
  });
  if (bad >= 0) failOnNaN("topkMask", bad, cols);
}

void CudaBackend::nmMask(const TensorView& scores, int n, int m, bool largest, TensorView& mask) {
  const int64_t rows = scores.shape[0], cols = scores.shape[1];
  const int64_t bad = firstFlagged([&](int64_t* flag) {
    cuda::nmMask(scores.as<const float>(), rows, cols, n, m, largest, mask.as<uint8_t>(), flag, stream_);
  });
  if (bad >= 0) failOnNaN("nmMask", bad, cols);
}

void CudaBackend::thresholdMask(const TensorView& scores, double threshold, TensorView& mask) {
  // Compared in f32, as the CPU backend does.
  const int64_t bad = firstFlagged([&](int64_t* flag) {
    cuda::thresholdMask(scores.as<const float>(), scores.numel(), static_cast<float>(threshold), mask.as<uint8_t>(),
                        flag, stream_);
  });
  if (bad >= 0) failOnNaN("thresholdMask", bad, scores.cols());
}

void CudaBackend::applyMask(const TensorView& x, const TensorView& mask, TensorView& out) {
  cuda::applyMask(x.data, mask.as<const uint8_t>(), out.data, x.numel(), dtypeSize(x.dtype), stream_);
  synchronize();
}

void CudaBackend::axpy(double alpha, const TensorView& x, TensorView& y) {
  cuda::axpy(alpha, x.data, y.data, x.numel(), x.dtype, stream_);
  synchronize();
}

void CudaBackend::unary(UnaryOp op, const TensorView& x, TensorView& out, double a, double b) {
  // The op checks leave this to the backends (the CPU one makes the same check).
  SPARQ_CHECK(op != UnaryOp::Clamp || a <= b, ErrorCode::InvalidArgument,
              "clamp: min must not exceed max, got min " + std::to_string(a) + " > max " + std::to_string(b));
  cuda::unary(op, x.data, out.data, x.numel(), x.dtype, a, b, stream_);
  synchronize();
}

// ---- packed-weight linears -------------------------------------------------------------------------

void CudaBackend::denseLinear(const DenseLinearOp& o) {
  throwIfCancelled();
  cuda::denseLinear(linearArgs(o.x, o.bias, o.y, false), o.w.data, o.w.dtype, stream_);
  synchronize();
}

void CudaBackend::int4Linear(const Int4LinearOp& o) {
  throwIfCancelled();
  cuda::int4Linear(linearArgs(o.x, o.bias, o.y, false), o.packed.as<const int32_t>(), o.scales.data, o.scales.dtype,
                   o.zeros.numel() > 0 ? o.zeros.as<const int8_t>() : nullptr, o.groupSize, stream_);
  synchronize();
}

void CudaBackend::sparse24Linear(const Sparse24LinearOp& o) {
  throwIfCancelled();
  const int64_t bad = firstFlagged([&](int64_t* flag) {
    cuda::sparse24Linear(linearArgs(o.x, o.bias, o.y, false), o.values.data, o.values.dtype, o.meta.as<const int32_t>(),
                         flag, stream_);
  });
  if (bad < 0) return;
  PackedIndex index;
  index.rows = o.meta.shape[0];
  index.meta = o.meta.as<const int32_t>();
  index.metaWords = o.meta.shape[1];
  failCorruptPacked(Sparse24LinearOp::kName, bad, index, stream_);
}

void CudaBackend::sparse24Int4Linear(const Sparse24Int4LinearOp& o) {
  throwIfCancelled();
  const int64_t bad = firstFlagged([&](int64_t* flag) {
    cuda::sparse24Int4Linear(linearArgs(o.x, o.bias, o.y, false), o.packed.as<const int32_t>(), o.meta.as<const int32_t>(),
                             o.scales.data, o.scales.dtype, o.groupSize, flag, stream_);
  });
  if (bad < 0) return;
  PackedIndex index;
  index.rows = o.meta.shape[0];
  index.meta = o.meta.as<const int32_t>();
  index.metaWords = o.meta.shape[1];
  index.keptName = "code";
  failCorruptPacked(Sparse24Int4LinearOp::kName, bad, index, stream_);
}

namespace {

PackedIndex bsrIndex(const TensorView& rowPtr, const TensorView& blockCols, int64_t k, int64_t blockSize) {
  PackedIndex index;
  index.rows = rowPtr.shape[0] - 1;
  index.rowPtr = rowPtr.as<const int32_t>();
  index.blockCols = blockCols.as<const int32_t>();
  index.blocks = blockCols.shape[0];
  index.blockColumns = blockColumns(k, blockSize);
  return index;
}

}  // namespace

void CudaBackend::bsrLinear(const BsrLinearOp& o) {
  throwIfCancelled();
  const int64_t bad = firstFlagged([&](int64_t* flag) {
    cuda::bsrLinear(linearArgs(o.x, o.bias, o.y, o.accumulate), o.rowPtr.as<const int32_t>(), o.blockCols.as<const int32_t>(),
                    o.blockCols.shape[0], o.values.data, o.values.dtype, o.blockSize, flag, stream_);
  });
  if (bad >= 0) failCorruptPacked(BsrLinearOp::kName, bad, bsrIndex(o.rowPtr, o.blockCols, o.x.shape[1], o.blockSize), stream_);
}

void CudaBackend::bsrInt4Linear(const BsrInt4LinearOp& o) {
  throwIfCancelled();
  const int64_t bad = firstFlagged([&](int64_t* flag) {
    cuda::bsrInt4Linear(linearArgs(o.x, o.bias, o.y, false), o.rowPtr.as<const int32_t>(), o.blockCols.as<const int32_t>(),
                        o.blockCols.shape[0], o.packed.as<const int32_t>(), o.blockScales.data, o.blockScales.dtype,
                        o.blockSize, flag, stream_);
  });
  if (bad >= 0) {
    failCorruptPacked(BsrInt4LinearOp::kName, bad, bsrIndex(o.rowPtr, o.blockCols, o.x.shape[1], o.blockSize), stream_);
  }
}

// ---- memory ----------------------------------------------------------------------------------------

void* CudaBackend::allocate(size_t bytes) {
  void* ptr = nullptr;
  const cudaError_t status = cudaMalloc(&ptr, bytes);
  if (status != cudaSuccess) {
    cudaGetLastError();
    fail(ErrorCode::AllocationFailed, "could not allocate " + std::to_string(bytes) + " bytes on " + properties_.name +
                                          ": " + cudaGetErrorString(status));
  }
  return ptr;
}

void CudaBackend::release(void* ptr) { check(cudaFree(ptr), "cudaFree"); }

// On the backend's stream and waited for: the host memory (JavaScript's) may change once this returns.
void CudaBackend::copyToDevice(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync (to device)");
  synchronize();
}

void CudaBackend::copyToHost(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync (to host)");
  synchronize();
}

void CudaBackend::synchronize() { check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }

}  // namespace sparq::cuda

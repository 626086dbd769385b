// Dense linear algebra on OpenBLAS and its LAPACK. Matrices are row-major; LAPACK is column-major, so a
// row-major lower triangle is LAPACK's upper one ('U') and vice versa.
#include "linalg.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "core/damping.h"
#include "core/pool.h"

extern "C" {
// LAPACK's Fortran entry points (the trailing size_t is the hidden length of the character argument).
void spotrf_(const char* uplo, const int* n, float* a, const int* lda, int* info, size_t uploLength);
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uploLength);
void spotri_(const char* uplo, const int* n, float* a, const int* lda, int* info, size_t uploLength);
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uploLength);
// OpenBLAS-specific; declared here so the build does not depend on which cblas.h the system picked.
void openblas_set_num_threads(int threads);
}

namespace sparq::cpu {

namespace {

// A gemm this large is cut into row panels so that cancellation is noticed within a fraction of a
// second; panels stay big enough (>= 2^35 flops) to keep OpenBLAS at full speed.
constexpr double kPanelFlops = 34359738368.0;

int blasInt(int64_t v, const char* what) {
  SPARQ_CHECK(v <= 2147483647, ErrorCode::InvalidArgument,
          std::string(what) + " = " + std::to_string(v) + " exceeds the BLAS index range (2^31 - 1)");
  return static_cast<int>(v);
}

template <typename T>
void scaleMatrix(T* c, int64_t count, double beta) {
  // beta = 0 must overwrite, not multiply: c may hold NaN.
  for (int64_t i = 0; i < count; ++i) c[i] = beta == 0 ? T(0) : static_cast<T>(beta * c[i]);
}

template <typename T>
void gemmTyped(const TensorView& a, bool transA, const TensorView& b, bool transB, TensorView& c, double alpha,
               double beta) {
  const int64_t m = c.shape[0], n = c.shape[1];
  const int64_t k = transA ? a.shape[0] : a.shape[1];
  if (m == 0 || n == 0) return;
  if (k == 0) return scaleMatrix(c.as<T>(), m * n, beta);
  const int lda = blasInt(a.shape[1], "a's row length"), ldb = blasInt(b.shape[1], "b's row length");
  const int ldc = blasInt(n, "c's row length");
  const double flopsPerRow = 2.0 * static_cast<double>(n) * static_cast<double>(k);
  const int64_t panelRows = std::max<int64_t>(256, static_cast<int64_t>(kPanelFlops / flopsPerRow));
  for (int64_t row = 0; row < m; row += panelRows) {
    throwIfCancelled();
    const int rows = blasInt(std::min(panelRows, m - row), "rows");
    // Row `row` of op(a) starts at a[row][0] untransposed, at a[0][row] transposed.
    const T* aPanel = a.as<const T>() + (transA ? row : row * a.shape[1]);
    T* cPanel = c.as<T>() + row * n;
    const auto ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans;
    if constexpr (std::is_same_v<T, float>) {
      cblas_sgemm(CblasRowMajor, ta, tb, rows, blasInt(n, "n"), blasInt(k, "k"), static_cast<float>(alpha), aPanel,
                  lda, b.as<const float>(), ldb, static_cast<float>(beta), cPanel, ldc);
    } else {
      cblas_dgemm(CblasRowMajor, ta, tb, rows, blasInt(n, "n"), blasInt(k, "k"), alpha, aPanel, lda,
                  b.as<const double>(), ldb, beta, cPanel, ldc);
    }
  }
}

// Copies the lower triangle onto the upper one, one 32×32 tile at a time through a small buffer: the
// tile is read row by row and written row by row, so neither side walks down a column (which misses the
// TLB and, for power-of-two strides, thrashes one cache set).
template <typename T>
void mirrorLower(T* c, int64_t n) {
  constexpr int64_t kTile = 32;
  const int64_t tiles = (n + kTile - 1) / kTile;
  parallelFor(tiles, 1, [&](int64_t t0, int64_t t1) {
    T buffer[kTile][kTile];
    for (int64_t ti = t0; ti < t1; ++ti) {
      const int64_t i0 = ti * kTile, rows = std::min(kTile, n - i0);
      // Tiles strictly below the diagonal: lower block (i0.., j0..) lands at upper block (j0.., i0..).
      for (int64_t j0 = 0; j0 < i0; j0 += kTile) {
        const int64_t cols = std::min(kTile, n - j0);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t q = 0; q < cols; ++q) buffer[r][q] = c[(i0 + r) * n + j0 + q];
        }
        for (int64_t q = 0; q < cols; ++q) {
          T* upperRow = c + (j0 + q) * n + i0;
          for (int64_t r = 0; r < rows; ++r) upperRow[r] = buffer[r][q];
        }
      }
      // The diagonal tile.
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t q = r + 1; q < rows; ++q) c[(i0 + r) * n + i0 + q] = c[(i0 + q) * n + i0 + r];
      }
    }
  });
}

// beta·c on the lower triangle only (beta = 0 overwrites, c may hold NaN).
template <typename T>
void scaleLower(T* c, int64_t n, double beta) {
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j <= i; ++j) c[i * n + j] = beta == 0 ? T(0) : static_cast<T>(beta * c[i * n + j]);
  }
}

template <typename T>
void syrkTyped(const TensorView& x, TensorView& c, double alpha, double beta, bool fillUpper) {
  const int64_t rows = x.shape[0], n = x.shape[1];
  if (n == 0) return;
  throwIfCancelled();
  if (rows == 0) {
    scaleLower(c.as<T>(), n, beta);
    if (fillUpper) mirrorLower(c.as<T>(), n);
    return;
  }
  const int nn = blasInt(n, "n"), k = blasInt(rows, "rows of x");
  if constexpr (std::is_same_v<T, float>) {
    cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, nn, k, static_cast<float>(alpha), x.as<const float>(), nn,
                static_cast<float>(beta), c.as<float>(), nn);
  } else {
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, nn, k, alpha, x.as<const double>(), nn, beta, c.as<double>(), nn);
  }
  if (fillUpper) mirrorLower(c.as<T>(), n);
}

template <typename T>
int potrf(T* a, int n) {
  int info = 0;
  const char uplo = 'U';  // row-major lower
  if constexpr (std::is_same_v<T, float>) spotrf_(&uplo, &n, a, &n, &info, 1);
  else dpotrf_(&uplo, &n, a, &n, &info, 1);
  return info;
}

template <typename T>
int potri(T* a, int n) {
  int info = 0;
  const char uplo = 'U';
  if constexpr (std::is_same_v<T, float>) spotri_(&uplo, &n, a, &n, &info, 1);
  else dpotri_(&uplo, &n, a, &n, &info, 1);
  return info;
}

template <typename T>
CholeskyReport choleskyTyped(const TensorView& aView, TensorView& outView, const CholeskyOptions& options) {
  const int64_t n64 = aView.shape[0];
  const int n = blasInt(n64, "matrix size");
  CholeskyReport report;
  if (n == 0) return report;
  const T* a = aView.as<const T>();
  T* out = outView.as<T>();

  for (int64_t i = 0; i < n64 * n64; ++i) {
    if (!std::isfinite(static_cast<double>(a[i]))) {
      fail(ErrorCode::InvalidArgument, "cholesky: the matrix has a non-finite entry at row " + std::to_string(i / n64) +
                                           ", column " + std::to_string(i % n64));
    }
  }
  double sumAbsDiagonal = 0;
  for (int64_t i = 0; i < n64; ++i) sumAbsDiagonal += std::fabs(static_cast<double>(a[i * n64 + i]));
  DampingLadder ladder(options, sumAbsDiagonal, n64);

  // When out aliases a, keep a pristine copy for the next rung of the ladder.
  std::vector<T> original;
  if (out == a) original.assign(a, a + n64 * n64);
  const T* source = out == a ? original.data() : a;

  int failedPivot = 0;
  while (ladder.next()) {
    throwIfCancelled();
    memcpy(out, source, sizeof(T) * n64 * n64);
    for (int64_t i = 0; i < n64; ++i) out[i * n64 + i] += static_cast<T>(ladder.lambda());
    failedPivot = potrf(out, n);
    if (failedPivot == 0) break;
  }
  if (failedPivot != 0) ladder.exhausted(failedPivot);
  report = ladder.report();
  throwIfCancelled();
  if (options.inverse) {
    const int info = potri(out, n);
    SPARQ_CHECK(info == 0, ErrorCode::NotPositiveDefinite,
            "cholesky: the factor is singular at diagonal entry " + std::to_string(info));
    mirrorLower(out, n64);
    return report;
  }
  // out holds L in its lower triangle; clear the rest, or transpose to U = Lᵀ.
  parallelFor(n64, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      for (int64_t j = i + 1; j < n64; ++j) {
        if (options.upper) {
          out[i * n64 + j] = out[j * n64 + i];
          out[j * n64 + i] = 0;
        } else {
          out[i * n64 + j] = 0;
        }
      }
    }
  });
  return report;
}

template <typename T>
void trsmTyped(const TensorView& t, TensorView& b, bool lower, bool transT, bool left, bool unitDiagonal, double alpha) {
  const int m = blasInt(b.shape[0], "rows of b"), n = blasInt(b.shape[1], "columns of b");
  if (m == 0 || n == 0) return;
  throwIfCancelled();
  const int ldt = blasInt(t.shape[0], "t's size");
  const auto side = left ? CblasLeft : CblasRight;
  const auto uplo = lower ? CblasLower : CblasUpper;
  const auto trans = transT ? CblasTrans : CblasNoTrans;
  const auto diag = unitDiagonal ? CblasUnit : CblasNonUnit;
  if constexpr (std::is_same_v<T, float>) {
    cblas_strsm(CblasRowMajor, side, uplo, trans, diag, m, n, static_cast<float>(alpha), t.as<const float>(), ldt,
                b.as<float>(), n);
  } else {
    cblas_dtrsm(CblasRowMajor, side, uplo, trans, diag, m, n, alpha, t.as<const double>(), ldt, b.as<double>(), n);
  }
}

}  // namespace

void gemm(const TensorView& a, bool transA, const TensorView& b, bool transB, TensorView& c, double alpha, double beta) {
  if (a.dtype == DType::F64) return gemmTyped<double>(a, transA, b, transB, c, alpha, beta);
  gemmTyped<float>(a, transA, b, transB, c, alpha, beta);
}

void syrk(const TensorView& x, TensorView& c, double alpha, double beta, bool fillUpper) {
  if (x.dtype == DType::F64) return syrkTyped<double>(x, c, alpha, beta, fillUpper);
  syrkTyped<float>(x, c, alpha, beta, fillUpper);
}

CholeskyReport cholesky(const TensorView& a, TensorView& out, const CholeskyOptions& options) {
  if (a.dtype == DType::F64) return choleskyTyped<double>(a, out, options);
  return choleskyTyped<float>(a, out, options);
}

void trsm(const TensorView& t, TensorView& b, bool lower, bool transT, bool left, bool unitDiagonal, double alpha) {
  if (t.dtype == DType::F64) return trsmTyped<double>(t, b, lower, transT, left, unitDiagonal, alpha);
  trsmTyped<float>(t, b, lower, transT, left, unitDiagonal, alpha);
}

void setBlasThreads(int threads) { openblas_set_num_threads(threads); }

}  // namespace sparq::cpu

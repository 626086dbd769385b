// Dense pieces of ALPS (Meng et al., 2024) that are not plain BLAS calls: the symmetric
// eigendecomposition (LAPACK dsyevd, f64) and the conjugate-gradient refinement on a fixed support.
//
// Masked CG, one system per row r of X [m, n] (a row is one output's weights in the scaled basis):
//   minimize ½·x_rᵀ·H·x_r − g_rᵀ·x_r over x_r supported on S_r = {j : mask[r, j] = 1}
// i.e. solve H_SS·x_S = g_S. All rows advance together, so the products with H are one GEMM per
// iteration (X·H, H symmetric); residuals and directions are masked to the support, and a Jacobi
// preconditioner (1/H_jj) scales the residual. Rows stop improving once every row's masked residual is
// below rtol·‖g_r on S_r‖, or after maxIterations.
#include "alps.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/pool.h"

extern "C" {
void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w, double* work,
             const int* lwork, int* iwork, const int* liwork, int* info, size_t jobzLength, size_t uploLength);
}

namespace sparq::cpu {

void eigh(const TensorView& a, TensorView& values, TensorView& vectors) {
  const int n = static_cast<int>(a.shape[0]);
  if (n == 0) return;
  double* v = vectors.as<double>();
  std::copy(a.as<const double>(), a.as<const double>() + static_cast<int64_t>(n) * n, v);
  // Row-major A is LAPACK's column-major Aᵀ = A; eigenvectors come back as LAPACK columns, which are
  // rows of the row-major buffer: row i is the eigenvector of values[i] (ascending).
  const char jobz = 'V', uplo = 'L';
  int info = 0, lwork = -1, liwork = -1, iworkQuery = 0;
  double workQuery = 0;
  dsyevd_(&jobz, &uplo, &n, v, &n, values.as<double>(), &workQuery, &lwork, &iworkQuery, &liwork, &info, 1, 1);
  lwork = static_cast<int>(workQuery);
  liwork = iworkQuery;
  std::vector<double> work(static_cast<size_t>(std::max(lwork, 1)));
  std::vector<int> iwork(static_cast<size_t>(std::max(liwork, 1)));
  throwIfCancelled();
  dsyevd_(&jobz, &uplo, &n, v, &n, values.as<double>(), work.data(), &lwork, iwork.data(), &liwork, &info, 1, 1);
  SPARQ_CHECK(info == 0, ErrorCode::Internal,
              "eigh: LAPACK dsyevd failed (info " + std::to_string(info) + "); the matrix may hold NaN or infinity");
}

MaskedCgReport maskedCg(const TensorView& hView, const TensorView& gView, const TensorView& maskView, TensorView& xView,
                        const MaskedCgOptions& options) {
  const int64_t rows = xView.shape[0], n = xView.shape[1];
  const float* h = hView.as<const float>();
  const float* g = gView.as<const float>();
  const uint8_t* mask = maskView.as<const uint8_t>();
  float* x = xView.as<float>();
  MaskedCgReport report;
  if (rows == 0 || n == 0) return report;
  const size_t size = static_cast<size_t>(rows * n);
  std::vector<float> residual(size), direction(size), product(size), preconditioned(size);
  std::vector<double> rz(static_cast<size_t>(rows)), target(static_cast<size_t>(rows));
  std::vector<float> inverseDiagonal(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) inverseDiagonal[j] = h[j * n + j] > 0 ? 1.0f / h[j * n + j] : 1.0f;
  const auto timesH = [&](const float* in, float* out) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(n),
                static_cast<int>(n), 1.0f, in, static_cast<int>(n), h, static_cast<int>(n), 0.0f, out, static_cast<int>(n));
  };
  const int64_t grain = std::max<int64_t>(1, 16384 / n);
  // Returns true when every row's masked residual is below rtol·‖g_r on its support‖.
  const auto converged = [&]() {
    std::vector<uint8_t> done(static_cast<size_t>(rows));
    parallelFor(rows, grain, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        double squares = 0;
        for (int64_t j = 0; j < n; ++j) squares += static_cast<double>(residual[r * n + j]) * residual[r * n + j];
        done[r] = std::sqrt(squares) <= options.rtol * target[r];
      }
    });
    return std::all_of(done.begin(), done.end(), [](uint8_t d) { return d != 0; });
  };

  // The restricted problem: x starts on the support (zero elsewhere), and stays there.
  for (size_t i = 0; i < size; ++i) x[i] = mask[i] ? x[i] : 0.0f;
  timesH(x, product.data());
  parallelFor(rows, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      double rzRow = 0, targetSquares = 0;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t i = r * n + j;
        const float keep = mask[i] ? 1.0f : 0.0f;
        residual[i] = keep * (g[i] - product[i]);
        preconditioned[i] = residual[i] * inverseDiagonal[j];
        direction[i] = preconditioned[i];
        rzRow += static_cast<double>(residual[i]) * preconditioned[i];
        targetSquares += keep * static_cast<double>(g[i]) * g[i];
      }
      rz[r] = rzRow;
      target[r] = std::sqrt(targetSquares);
    }
  });
  if (converged()) {
    report.converged = true;
    return report;
  }
  for (int iteration = 1; iteration <= options.maxIterations; ++iteration) {
    throwIfCancelled();
    timesH(direction.data(), product.data());
    parallelFor(rows, grain, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        float* d = direction.data() + r * n;
        float* p = product.data() + r * n;
        double curvature = 0;
        for (int64_t j = 0; j < n; ++j) curvature += static_cast<double>(d[j]) * p[j];
        const float alpha = curvature > 0 ? static_cast<float>(rz[r] / curvature) : 0.0f;
        double rzNext = 0;
        for (int64_t j = 0; j < n; ++j) {
          const int64_t i = r * n + j;
          x[i] += alpha * d[j];
          residual[i] = mask[i] ? residual[i] - alpha * p[j] : 0.0f;
          preconditioned[i] = residual[i] * inverseDiagonal[j];
          rzNext += static_cast<double>(residual[i]) * preconditioned[i];
        }
        const float beta = rz[r] > 0 ? static_cast<float>(rzNext / rz[r]) : 0.0f;
        rz[r] = rzNext;
        for (int64_t j = 0; j < n; ++j) d[j] = preconditioned[r * n + j] + beta * d[j];
      }
    });
    report.iterations = iteration;
    if (converged()) {
      report.converged = true;
      break;
    }
  }
  return report;
}

}  // namespace sparq::cpu

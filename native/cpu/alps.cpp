// Dense pieces of ALPS (Meng et al., 2024) that are not plain BLAS calls: the symmetric
// eigendecomposition (LAPACK dsyevd, f64) and the conjugate-gradient refinement on a fixed support.
//
// Masked CG, one system per row r of X [m, n] (a row is one output's weights in the scaled basis):
//   minimize ½·x_rᵀ·H·x_r − g_rᵀ·x_r over x_r supported on S_r = {j : mask[r, j] = 1}
// i.e. solve H_SS·x_S = g_S. All rows advance together, so the products with H are one GEMM per
// iteration (X·H, H symmetric); residuals and directions are masked to the support, and a Jacobi
// preconditioner (1/H_jj) scales the residual. Rows stop improving once every row's masked residual is
// below rtol·‖g_r on S_r‖, or after maxIterations.
//
// One ADMM iteration, fused (alpsAdmmStep): the elementwise steps of
//   R = G − V + ρZ;  B = R·(Ĥ + ρI)⁻¹;  U = B + V/ρ;  S = P(U²);  Z = U⊙S;  V ← V + ρB − ρZ
// run as three passes over memory around the GEMM instead of a dozen separate ops, each allocating its
// output. Every value is rounded exactly as the separate ops round it (the same expressions, compiled for
// the same instruction set: y + a·x contracts to one fma where the target has one), so the fused step
// selects the same support and writes the same bits. The unstructured projection P finds the kept-th
// largest U² without materializing U²: a pass counts the keys (U² bits) per bucket of their top 12 bits,
// a second pass packs the keys of the one bucket holding the threshold, and an exact select on those
// finds it; the final pass compares against it. The matrix is split into fixed stripes, so ties at the
// threshold go to the lower index whatever the thread count.
#include "alps.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/pool.h"
#include "elementwise.h"
#include "linalg.h"
#include "simd.h"

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


// ---- the fused ADMM iteration --------------------------------------------------------------------------

namespace {

// Buckets of the keys' top bits: a non-NaN U² is ≥ 0, so its bits order like the float and fit in 31 bits.
constexpr int kBucketShift = 19;
constexpr int64_t kBuckets = int64_t{1} << (31 - kBucketShift);
constexpr uint32_t kInfinityBits = 0x7F800000u;
constexpr int64_t kStripe = int64_t{1} << 16;  // elements per stripe (at most kMaxStripes stripes)
constexpr int64_t kMaxStripes = 64;

SPARQ_INLINE uint32_t squareBits(float u) {
  const float s = u * u;
  uint32_t bits;
  memcpy(&bits, &s, 4);
  return bits & 0x7FFFFFFFu;  // a NaN may carry a sign; every other square is already positive
}

// The expressions of the separate ops (axpy: y + a·x; unary square; applyMask), so they round alike.
SPARQ_INLINE float admmTarget(float b, float v, float inverseRho) { return b + inverseRho * v; }

SPARQ_INLINE void rightBody(const float* g, const float* v, const float* z, float rho, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float r = g[i] + -1.0f * v[i];
    out[i] = r + rho * z[i];
  }
}

// Counts the keys of U² per bucket; true if one is NaN.
SPARQ_INLINE bool histogramBody(const float* b, const float* v, float inverseRho, int64_t n, uint32_t* histogram) {
  uint32_t nan = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t key = squareBits(admmTarget(b[i], v[i], inverseRho));
    nan |= static_cast<uint32_t>(key > kInfinityBits);
    histogram[key >> kBucketShift]++;
  }
  return nan != 0;
}

// Appends the keys of one bucket, in index order.
SPARQ_INLINE void collectBody(const float* b, const float* v, float inverseRho, int64_t n, uint32_t bucket,
                              std::vector<uint32_t>& out) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t key = squareBits(admmTarget(b[i], v[i], inverseRho));
    if ((key >> kBucketShift) == bucket) out.push_back(key);
  }
}

// Entry i of the projection and dual update: Z = U where kept, else 0; V ← V + ρB − ρZ (rounded as the
// separate ops rounded it). Returns 1 when the support changed there.
SPARQ_INLINE int projectAndUpdate(const float* b, float* v, float* z, uint8_t* support, const uint8_t* previous,
                                  int64_t i, float u, bool keep, float rho, float negativeRho) {
  const float kept = keep ? u : 0.0f;
  const float raised = v[i] + rho * b[i];
  v[i] = raised + negativeRho * kept;
  z[i] = kept;
  support[i] = keep;
  return keep != (previous[i] != 0);
}

// support = key ≥ threshold (a signed compare: both are in [0, 2³¹)); Z = U on the support; V ← V + ρB − ρZ.
// Returns the entries whose support differs from previous.
SPARQ_INLINE int64_t updateBody(const float* b, float* v, float* z, uint8_t* support, const uint8_t* previous,
                                float inverseRho, float rho, int32_t threshold, int64_t n) {
  int64_t changes = 0;
  const float negativeRho = -rho;
  for (int64_t i = 0; i < n; ++i) {
    const float u = admmTarget(b[i], v[i], inverseRho);
    const bool keep = static_cast<int32_t>(squareBits(u)) >= threshold;
    changes += projectAndUpdate(b, v, z, support, previous, i, u, keep, rho, negativeRho);
  }
  return changes;
}

// The same, keeping keys above `threshold` and the first `ties` keys equal to it.
SPARQ_INLINE int64_t updateTiesBody(const float* b, float* v, float* z, uint8_t* support, const uint8_t* previous,
                                    float inverseRho, float rho, uint32_t threshold, int64_t ties, int64_t n) {
  int64_t changes = 0;
  const float negativeRho = -rho;
  for (int64_t i = 0; i < n; ++i) {
    const float u = admmTarget(b[i], v[i], inverseRho);
    const uint32_t key = squareBits(u);
    bool keep = key > threshold;
    if (key == threshold && ties > 0) {
      keep = true;
      --ties;
    }
    changes += projectAndUpdate(b, v, z, support, previous, i, u, keep, rho, negativeRho);
  }
  return changes;
}

// N:M over whole rows: in every group of m, the n largest keys (ties to the lower index), then the update.
// Sets nan if a key is NaN.
SPARQ_INLINE int64_t updateNmBody(const float* b, float* v, float* z, uint8_t* support, const uint8_t* previous,
                                  float inverseRho, float rho, int n, int m, int64_t count, bool& nan) {
  int64_t changes = 0;
  const float negativeRho = -rho;
  float u[32];
  uint32_t key[32];
  for (int64_t start = 0; start < count; start += m) {
    for (int j = 0; j < m; ++j) {
      u[j] = admmTarget(b[start + j], v[start + j], inverseRho);
      key[j] = squareBits(u[j]);
      nan |= key[j] > kInfinityBits;
    }
    for (int j = 0; j < m; ++j) {
      int rank = 0;
      for (int i = 0; i < j; ++i) rank += key[i] >= key[j];
      for (int i = j + 1; i < m; ++i) rank += key[i] > key[j];
      const bool keep = rank < n;
      changes += projectAndUpdate(b, v, z, support, previous, start + j, u[j], keep, rho, negativeRho);
    }
  }
  return changes;
}

struct AdmmKernels {
  void (*right)(const float*, const float*, const float*, float, float*, int64_t);
  bool (*histogram)(const float*, const float*, float, int64_t, uint32_t*);
  void (*collect)(const float*, const float*, float, int64_t, uint32_t, std::vector<uint32_t>&);
  int64_t (*update)(const float*, float*, float*, uint8_t*, const uint8_t*, float, float, int32_t, int64_t);
  int64_t (*updateTies)(const float*, float*, float*, uint8_t*, const uint8_t*, float, float, uint32_t, int64_t, int64_t);
  int64_t (*updateNm)(const float*, float*, float*, uint8_t*, const uint8_t*, float, float, int, int, int64_t, bool&);
};

#define SPARQ_ADMM_KERNELS(Suffix, Target)                                                                             \
  Target void right##Suffix(const float* g, const float* v, const float* z, float rho, float* out, int64_t n) {        \
    rightBody(g, v, z, rho, out, n);                                                                                   \
  }                                                                                                                    \
  Target bool histogram##Suffix(const float* b, const float* v, float inverseRho, int64_t n, uint32_t* histogram) {    \
    return histogramBody(b, v, inverseRho, n, histogram);                                                              \
  }                                                                                                                    \
  Target void collect##Suffix(const float* b, const float* v, float inverseRho, int64_t n, uint32_t bucket,            \
                              std::vector<uint32_t>& out) {                                                            \
    collectBody(b, v, inverseRho, n, bucket, out);                                                                     \
  }                                                                                                                    \
  Target int64_t update##Suffix(const float* b, float* v, float* z, uint8_t* support, const uint8_t* previous,         \
                                float inverseRho, float rho, int32_t threshold, int64_t n) {                           \
    return updateBody(b, v, z, support, previous, inverseRho, rho, threshold, n);                                      \
  }                                                                                                                    \
  Target int64_t updateTies##Suffix(const float* b, float* v, float* z, uint8_t* support, const uint8_t* previous,     \
                                    float inverseRho, float rho, uint32_t threshold, int64_t ties, int64_t n) {        \
    return updateTiesBody(b, v, z, support, previous, inverseRho, rho, threshold, ties, n);                            \
  }                                                                                                                    \
  Target int64_t updateNm##Suffix(const float* b, float* v, float* z, uint8_t* support, const uint8_t* previous,       \
                                  float inverseRho, float rho, int n, int m, int64_t count, bool& nan) {               \
    return updateNmBody(b, v, z, support, previous, inverseRho, rho, n, m, count, nan);                                \
  }                                                                                                                    \
  const AdmmKernels kAdmm##Suffix = {right##Suffix,  histogram##Suffix,  collect##Suffix,                              \
                                     update##Suffix, updateTies##Suffix, updateNm##Suffix};

SPARQ_ADMM_KERNELS(Generic, )
SPARQ_ADMM_KERNELS(Avx2, SPARQ_TARGET_AVX2)
SPARQ_ADMM_KERNELS(Avx512, SPARQ_TARGET_AVX512)
#undef SPARQ_ADMM_KERNELS

[[noreturn]] void failNaN() {
  fail(ErrorCode::InvalidArgument, "alpsAdmmStep: B + V/ρ contains NaN; the weights, the Hessian or ρ are not finite");
}

// The largest `kept` keys over the whole matrix, as one threshold per stripe. Fills `thresholds` (select
// key ≥ threshold) and, for the one stripe that takes only some of the keys equal to the threshold, sets
// tieStripe, tieKey and tieCount.
void selectThresholds(const float* b, const float* v, float inverseRho, int64_t total, int64_t kept,
                      const AdmmKernels& k, int64_t stripe, int64_t stripes, std::vector<int32_t>& thresholds,
                      int64_t& tieStripe, uint32_t& tieKey, int64_t& tieCount) {
  std::vector<uint32_t> histograms(static_cast<size_t>(stripes * kBuckets));
  std::vector<uint8_t> nan(static_cast<size_t>(stripes));
  parallelFor(stripes, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t begin = s * stripe, count = std::min(stripe, total - begin);
      nan[s] = k.histogram(b + begin, v + begin, inverseRho, count, histograms.data() + s * kBuckets);
    }
  });
  if (std::any_of(nan.begin(), nan.end(), [](uint8_t x) { return x != 0; })) failNaN();
  tieStripe = -1;
  if (kept == 0 || kept == total) {
    // Nothing or everything: a threshold above every key, or at the lowest.
    std::fill(thresholds.begin(), thresholds.end(), kept == 0 ? static_cast<int32_t>(kInfinityBits + 1) : 0);
    return;
  }
  // The bucket of the kept-th largest key, from the top.
  int64_t above = 0, bucket = kBuckets - 1, inBucket = 0;
  for (; bucket >= 0; --bucket) {
    inBucket = 0;
    for (int64_t s = 0; s < stripes; ++s) inBucket += histograms[s * kBuckets + bucket];
    if (above + inBucket >= kept) break;
    above += inBucket;
  }
  SPARQ_CHECK(bucket >= 0, ErrorCode::Internal, "alpsAdmmStep: the bucket select ran past the end");
  std::vector<std::vector<uint32_t>> keys(static_cast<size_t>(stripes));
  parallelFor(stripes, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t begin = s * stripe, count = std::min(stripe, total - begin);
      keys[s].reserve(histograms[s * kBuckets + bucket]);
      k.collect(b + begin, v + begin, inverseRho, count, static_cast<uint32_t>(bucket), keys[s]);
    }
  });
  std::vector<uint32_t> all;
  all.reserve(static_cast<size_t>(inBucket));
  for (const auto& part : keys) all.insert(all.end(), part.begin(), part.end());
  const int64_t need = kept - above;  // 1..inBucket
  std::nth_element(all.begin(), all.begin() + (need - 1), all.end(), std::greater<uint32_t>());
  const uint32_t threshold = all[need - 1];
  int64_t greater = above;
  for (uint32_t key : all) greater += key > threshold;
  int64_t ties = kept - greater;  // keys equal to the threshold still to take, first in index order
  for (int64_t s = 0; s < stripes; ++s) {
    const int64_t equal = std::count(keys[s].begin(), keys[s].end(), threshold);
    if (ties >= equal) {
      thresholds[s] = static_cast<int32_t>(threshold);  // all of this stripe's ties
      ties -= equal;
    } else {
      thresholds[s] = static_cast<int32_t>(threshold + 1);  // none of them
      if (ties > 0) {
        tieStripe = s;
        tieKey = threshold;
        tieCount = ties;
        ties = 0;
      }
    }
  }
}

}  // namespace

double alpsAdmmStep(const TensorView& gView, const TensorView& inverse, const TensorView& factors, const TensorView& back,
                    double rho, int64_t kept, int n, int m, TensorView& vView, TensorView& zView, TensorView& bView,
                    TensorView& workView, TensorView& supportView, const TensorView& previousView) {
  const int64_t rows = gView.shape[0], cols = gView.shape[1], total = rows * cols;
  if (total == 0) return 0;
  const AdmmKernels& k = *pickKernel(&kAdmmGeneric, &kAdmmAvx2, &kAdmmAvx512);
  const float* g = gView.as<const float>();
  float* v = vView.as<float>();
  float* z = zView.as<float>();
  float* b = bView.as<float>();
  float* work = workView.as<float>();
  uint8_t* support = supportView.as<uint8_t>();
  const uint8_t* previous = previousView.as<const uint8_t>();
  // The scalars exactly as the separate ops take them: axpy's alpha and the reciprocal, rounded to f32.
  const float rhoF = static_cast<float>(rho), inverseRhoF = static_cast<float>(1 / rho);
  const auto matrix = [&](float* data) { return makeView(data, DType::F32, Device::CPU, {rows, cols}); };
  const int64_t elementGrain = int64_t{1} << 16;

  // R = G − V + ρZ, then B = R·(Ĥ + ρI)⁻¹, directly or through the eigenvector factors.
  const bool throughFactors = factors.numel() > 0;
  float* right = throughFactors ? b : work;
  parallelFor(total, elementGrain, [&](int64_t i0, int64_t i1) { k.right(g + i0, v + i0, z + i0, rhoF, right + i0, i1 - i0); });
  TensorView rightView = matrix(right), bOut = matrix(b), workOut = matrix(work);
  if (throughFactors) {
    gemm(rightView, false, inverse, false, workOut, 1, 0);
    scaleColumns(workOut, factors, workOut);
    gemm(workOut, false, back, false, bOut, 1, 0);
  } else {
    gemm(rightView, false, inverse, false, bOut, 1, 0);
  }
  throwIfCancelled();

  std::atomic<int64_t> changes{0};
  if (m > 0) {
    std::atomic<bool> nan{false};
    parallelFor(rows, std::max<int64_t>(1, 16384 / cols), [&](int64_t r0, int64_t r1) {
      bool sawNaN = false;
      const int64_t at = r0 * cols, count = (r1 - r0) * cols;
      changes += k.updateNm(b + at, v + at, z + at, support + at, previous + at, inverseRhoF, rhoF, n, m, count, sawNaN);
      if (sawNaN) nan = true;
    });
    if (nan) failNaN();
    return static_cast<double>(changes.load());
  }
  const int64_t stripe = std::max(kStripe, (total + kMaxStripes - 1) / kMaxStripes);
  const int64_t stripes = (total + stripe - 1) / stripe;
  std::vector<int32_t> thresholds(static_cast<size_t>(stripes));
  int64_t tieStripe = -1, tieCount = 0;
  uint32_t tieKey = 0;
  selectThresholds(b, v, inverseRhoF, total, kept, k, stripe, stripes, thresholds, tieStripe, tieKey, tieCount);
  throwIfCancelled();
  parallelFor(stripes, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t at = s * stripe, count = std::min(stripe, total - at);
      changes += s == tieStripe
                     ? k.updateTies(b + at, v + at, z + at, support + at, previous + at, inverseRhoF, rhoF, tieKey, tieCount, count)
                     : k.update(b + at, v + at, z + at, support + at, previous + at, inverseRhoF, rhoF, thresholds[s], count);
    }
  });
  return static_cast<double>(changes.load());
}

}  // namespace sparq::cpu

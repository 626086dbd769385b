// SparseGPT's column sweep (Frantar & Alistarh, 2023). Given U, the upper Cholesky factor of the damped
// inverse Hessian (H⁻¹ = UᵀU), columns are visited left to right in blocks of B:
//   mask    unstructured: at block start, prune the lowest w²/U_jj² over the whole rows×B block;
//           N:M (keep N of every M): at every M-th column, the M − N lowest w²/U_jj² of the next M columns of each row,
//           scored on the already-updated weights
//   column  e = (w_j − q_j)/U_jj with q_j = masked w_j;  W[:, j+1:block end] −= e·U[j, j+1:block end]
//   block   W[:, block end:] −= E·U[block, block end:]   (one gemm; E holds the block's e columns)
// Within a block every row is independent once the mask is chosen, so rows run in parallel and each
// row's sweep stays in cache; the lazy trailing update is the only O(rows·cols²) work and goes to BLAS.
#include "sparsegpt.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/pool.h"
#include "mask.h"
#include "simd.h"

namespace sparq::cpu {

namespace {

// Updates one row's block segment after column j has been decided: w[j+1..width) −= e·u[j+1..width).
SPARQ_INLINE void sweepRowBody(float* w, float* err, const float* u, int64_t uStride, uint8_t* prune, int width, int n,
                              int m) {
  for (int j = 0; j < width; ++j) {
    if (m > 0 && j % m == 0) {
      // N:M: rank each of the M current scores; ties go to the lower column (pruned first).
      uint8_t* groupPrune = prune + j;
      float scores[32];
      for (int t = 0; t < m; ++t) {
        const float d = u[(j + t) * uStride + j + t];
        scores[t] = (w[j + t] * w[j + t]) / (d * d);
      }
      for (int t = 0; t < m; ++t) {
        int rank = 0;
        for (int s = 0; s < m; ++s) rank += scores[s] < scores[t] || (scores[s] == scores[t] && s < t);
        groupPrune[t] = rank < m - n;  // keep the n largest
      }
    }
    const float* uRow = u + j * uStride;
    const float q = prune[j] ? 0.0f : w[j];
    const float e = (w[j] - q) / uRow[j];
    w[j] = q;
    err[j] = e;
    if (e != 0.0f) {
      for (int k = j + 1; k < width; ++k) w[k] -= e * uRow[k];
    }
  }
}

using SweepRowFn = void (*)(float*, float*, const float*, int64_t, uint8_t*, int, int, int);

void sweepRowGeneric(float* w, float* err, const float* u, int64_t uStride, uint8_t* prune, int width, int n,
                     int m) {
  sweepRowBody(w, err, u, uStride, prune, width, n, m);
}
SPARQ_TARGET_AVX2 void sweepRowAvx2(float* w, float* err, const float* u, int64_t uStride, uint8_t* prune,
                                    int width, int n, int m) {
  sweepRowBody(w, err, u, uStride, prune, width, n, m);
}
SPARQ_TARGET_AVX512 void sweepRowAvx512(float* w, float* err, const float* u, int64_t uStride, uint8_t* prune,
                                        int width, int n, int m) {
  sweepRowBody(w, err, u, uStride, prune, width, n, m);
}

}  // namespace

void sparsegptPrune(TensorView& w, const TensorView& hinvUpper, const SparseGptOptions& options) {
  const int64_t rows = w.shape[0], cols = w.shape[1];
  const bool nm = options.m > 0;
  // Blocks start on a group boundary, so N:M groups never straddle two blocks.
  const int64_t block = nm ? std::max<int64_t>(options.m, options.blockSize / options.m * options.m) : options.blockSize;
  float* weights = w.as<float>();
  const float* u = hinvUpper.as<const float>();
  const SweepRowFn sweepRow = pickKernel(sweepRowGeneric, sweepRowAvx2, sweepRowAvx512);

  std::vector<float> errors(static_cast<size_t>(rows * block));
  std::vector<uint8_t> prune(static_cast<size_t>(rows * block));
  std::vector<float> scores;
  // Unstructured: the blocks share the matrix's prune count so that the total is exact.
  const auto prunedBefore = [&](int64_t column) {
    return static_cast<int64_t>(std::llround(options.sparsity * static_cast<double>(rows) * static_cast<double>(column)));
  };

  for (int64_t start = 0; start < cols; start += block) {
    throwIfCancelled();
    const int width = static_cast<int>(std::min(block, cols - start));
    if (nm) {
      std::fill(prune.begin(), prune.end(), uint8_t{0});
    } else {
      scores.resize(static_cast<size_t>(rows * width));
      ThreadPool::instance().parallelFor(rows, 64, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const float* wRow = weights + r * cols + start;
          for (int j = 0; j < width; ++j) {
            const float d = u[(start + j) * cols + start + j];
            scores[r * width + j] = (wRow[j] * wRow[j]) / (d * d);
          }
        }
      });
      TensorView scoreView = makeView(scores.data(), DType::F32, Device::CPU, {1, rows * width});
      TensorView maskView = makeView(prune.data(), DType::U8, Device::CPU, {1, rows * width});
      topkMask(scoreView, prunedBefore(start + width) - prunedBefore(start), /*largest=*/false, maskView);
    }
    const float* uBlock = u + start * cols + start;
    ThreadPool::instance().parallelFor(rows, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        sweepRow(weights + r * cols + start, errors.data() + r * width, uBlock, cols, prune.data() + r * width, width,
                 options.n, options.m);
      }
    });
    const int64_t rest = cols - start - width;
    if (rest > 0 && rows > 0) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(rest), width,
                  -1.0f, errors.data(), width, u + start * cols + start + width, static_cast<int>(cols), 1.0f,
                  weights + start + width, static_cast<int>(cols));
    }
  }
}

}  // namespace sparq::cpu

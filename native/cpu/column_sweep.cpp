// The optimal-brain-surgeon column sweep of SparseGPT (Frantar & Alistarh, 2023) and GPTQ (Frantar et al.,
// 2022), one loop for both. Given U, the upper Cholesky factor of the damped inverse Hessian (H⁻¹ = UᵀU),
// columns are visited left to right in blocks of B:
//   mask    unstructured: at block start, prune the lowest w²/U_jj² over the whole rows×B block;
//           N:M (keep N of every M): at every M-th column, the M − N lowest w²/U_jj² of the next M columns of
//           each row, scored on the already-updated weights
//   grid    fixed before the sweep, or (fitAtGroupStart) fitted per row at block start for every group
//           whose first column is in the block, from the weights as updated by the previous blocks
//   column  q_j = 0 where pruned, else the grid's decoding of w_j (or w_j itself without a grid);
//           e = (w_j − q_j)/U_jj;  W[:, j+1:block end] −= e·U[j, j+1:block end]
//   block   W[:, block end:] −= E·U[block, block end:]   (one gemm; E holds the block's e columns)
// Within a block every row is independent once the mask and grid are chosen, so rows run in parallel and
// each row's sweep stays in cache; the lazy trailing update is the only O(rows·cols²) work and goes to BLAS.
#include "column_sweep.h"

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

// One row's grid: its scales and zero points, the group of each swept column, and where codes go.
struct RowGrid {
  const float* scales = nullptr;  // [groups] of this row (null: no quantization)
  const int8_t* zeros = nullptr;  // [groups], or null when symmetric
  const int32_t* groupOf = nullptr;  // [cols] (null: contiguous groups)
  int64_t groupSize = 1;
  int64_t column0 = 0;  // the block's first column
  int8_t* codes = nullptr;  // the block's codes of this row
  const uint8_t* keep = nullptr;  // the block's kept-exactly flags of this row (null: none)
  float qmin = 0, qmax = 0;
};

// Updates one row's block segment after column j has been decided: w[j+1..width) −= e·u[j+1..width).
SPARQ_INLINE void sweepRowBody(float* w, float* err, const float* u, int64_t uStride, uint8_t* prune, int width, int n,
                              int m, const RowGrid& grid) {
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
    if (grid.keep && grid.keep[j]) {
      // Kept exactly: no error to move on; its code decodes to 0 (the value is stored apart).
      if (grid.scales) {
        const int64_t column = grid.column0 + j;
        const int64_t g = grid.groupOf ? grid.groupOf[column] : column / grid.groupSize;
        grid.codes[j] = static_cast<int8_t>(grid.zeros ? grid.zeros[g] : 0);
      }
      err[j] = 0.0f;
      continue;
    }
    float q = prune[j] ? 0.0f : w[j];
    if (grid.scales) {
      const int64_t column = grid.column0 + j;
      const int64_t g = grid.groupOf ? grid.groupOf[column] : column / grid.groupSize;
      const float scale = grid.scales[g], zero = grid.zeros ? grid.zeros[g] : 0.0f;
      const float code = quantizeValue(q, scale, zero, grid.qmin, grid.qmax);
      grid.codes[j] = static_cast<int8_t>(code);
      q = dequantizeValue(code, zero, scale);
    }
    const float e = (w[j] - q) / uRow[j];
    w[j] = q;
    err[j] = e;
    if (e != 0.0f) {
      for (int k = j + 1; k < width; ++k) w[k] -= e * uRow[k];
    }
  }
}

using SweepRowFn = void (*)(float*, float*, const float*, int64_t, uint8_t*, int, int, int, const RowGrid&);

void sweepRowGeneric(float* w, float* err, const float* u, int64_t uStride, uint8_t* prune, int width, int n, int m,
                     const RowGrid& grid) {
  sweepRowBody(w, err, u, uStride, prune, width, n, m, grid);
}
SPARQ_TARGET_AVX2 void sweepRowAvx2(float* w, float* err, const float* u, int64_t uStride, uint8_t* prune, int width,
                                    int n, int m, const RowGrid& grid) {
  sweepRowBody(w, err, u, uStride, prune, width, n, m, grid);
}
SPARQ_TARGET_AVX512 void sweepRowAvx512(float* w, float* err, const float* u, int64_t uStride, uint8_t* prune,
                                        int width, int n, int m, const RowGrid& grid) {
  sweepRowBody(w, err, u, uStride, prune, width, n, m, grid);
}

// Fits row r's grid for every group whose first column lies in [start, start + width), from the row's
// current weights over the whole group (which may reach past the block).
void fitGroupsStartingIn(const float* weights, int64_t rows, int64_t cols, int64_t start, int64_t width,
                         const SweepOptions& options) {
  const QuantGrid& grid = options.grid;
  const int64_t groups = options.scales.shape[1];
  const int64_t first = (start + grid.groupSize - 1) / grid.groupSize;
  const int64_t last = std::min(groups, (start + width + grid.groupSize - 1) / grid.groupSize);
  if (first >= last) return;
  float* scales = options.scales.as<float>();
  int8_t* zeros = grid.symmetric ? nullptr : options.zeros.as<int8_t>();
  const uint8_t* keep = options.keep.numel() > 0 ? options.keep.as<const uint8_t>() : nullptr;
  ThreadPool::instance().parallelFor(rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t g = first; g < last; ++g) {
        const float* w = weights + r * cols + g * grid.groupSize;
        const uint8_t* kept = keep ? keep + r * cols + g * grid.groupSize : nullptr;
        const int64_t count = std::min(grid.groupSize, cols - g * grid.groupSize);
        // The range always includes 0 (groupParams), so starting from 0 changes nothing, and weights kept
        // exactly are left out of it.
        float lo = 0.0f, hi = 0.0f;
        for (int64_t c = 0; c < count; ++c) {
          if (kept && kept[c]) continue;
          lo = std::fmin(lo, w[c]);
          hi = std::fmax(hi, w[c]);
        }
        float scale, zero;
        groupParams(lo, hi, grid, scale, zero);
        scales[r * groups + g] = scale;
        if (zeros) zeros[r * groups + g] = static_cast<int8_t>(zero);
      }
    }
  });
}

}  // namespace

void columnSweep(TensorView& w, const TensorView& hinvUpper, const SweepOptions& options) {
  const int64_t rows = w.shape[0], cols = w.shape[1];
  const bool nm = options.m > 0;
  const bool quantize = options.grid.bits > 0;
  // Blocks start on a group boundary, so N:M groups never straddle two blocks.
  const int64_t block = nm ? std::max<int64_t>(options.m, options.blockSize / options.m * options.m) : options.blockSize;
  float* weights = w.as<float>();
  const float* u = hinvUpper.as<const float>();
  const SweepRowFn sweepRow = pickKernel(sweepRowGeneric, sweepRowAvx2, sweepRowAvx512);
  const int64_t groups = quantize ? options.scales.shape[1] : 0;
  if (quantize && options.groupOf.numel() > 0) {
    const int32_t* groupOf = options.groupOf.as<const int32_t>();
    for (int64_t c = 0; c < cols; ++c) {
      SPARQ_CHECK(groupOf[c] >= 0 && groupOf[c] < groups, ErrorCode::InvalidArgument,
                  "columnSweep: groupOf[" + std::to_string(c) + "] = " + std::to_string(groupOf[c]) + " is not a group of 0.." +
                      std::to_string(groups - 1));
    }
  }

  std::vector<float> errors(static_cast<size_t>(rows * block));
  std::vector<uint8_t> prune(static_cast<size_t>(rows * block));
  std::vector<float> scores;
  // Unstructured: the blocks share the matrix's prune count so that the total is exact.
  const auto prunedBefore = [&](int64_t column) {
    return static_cast<int64_t>(std::llround(options.sparsity * static_cast<double>(rows) * static_cast<double>(column)));
  };
  const bool prunes = nm || options.sparsity > 0;

  for (int64_t start = 0; start < cols; start += block) {
    throwIfCancelled();
    const int width = static_cast<int>(std::min(block, cols - start));
    if (nm || !prunes) {
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
    if (quantize && options.fitAtGroupStart) fitGroupsStartingIn(weights, rows, cols, start, width, options);
    const float* uBlock = u + start * cols + start;
    ThreadPool::instance().parallelFor(rows, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        RowGrid grid;
        if (quantize) {
          grid.scales = options.scales.as<const float>() + r * groups;
          grid.zeros = options.grid.symmetric ? nullptr : options.zeros.as<const int8_t>() + r * groups;
          grid.groupOf = options.groupOf.numel() > 0 ? options.groupOf.as<const int32_t>() : nullptr;
          grid.groupSize = options.grid.groupSize;
          grid.column0 = start;
          grid.codes = options.codes.as<int8_t>() + r * cols + start;
          grid.qmin = static_cast<float>(quantMin(options.grid.bits));
          grid.qmax = static_cast<float>(quantMax(options.grid.bits));
        }
        if (options.keep.numel() > 0) grid.keep = options.keep.as<const uint8_t>() + r * cols + start;
        sweepRow(weights + r * cols + start, errors.data() + r * width, uBlock, cols, prune.data() + r * width, width,
                 options.n, options.m, grid);
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

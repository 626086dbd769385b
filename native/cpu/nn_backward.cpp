// Backward kernels of the transformer building blocks in nn.cpp (and of the elementwise activations), plus
// an AdamW step, on f32. Like the forward ops, reductions that decide numerics (norm statistics, softmax
// normalizers, dot products, column sums) accumulate in f64. Parallel tasks never write the same element:
// outputs that many rows add into (weight, bias and embedding gradients, dK/dV) are split by column, by
// kv head, or reduced from per-block partial sums.
#include "nn_backward.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/pool.h"
#include "linalg.h"
#include "nn.h"

namespace sparq::cpu {

namespace {

// Rows per parallel task: enough that a task touches ~16K floats.
int64_t grainFor(int64_t rowLength) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(rowLength, 1)); }

void checkIndices(const char* op, const char* what, const int32_t* index, int64_t count, int64_t limit) {
  for (int64_t i = 0; i < count; ++i) {
    SPARQ_CHECK(index[i] >= 0 && index[i] < limit, ErrorCode::InvalidArgument,
                std::string(op) + ": " + what + " " + std::to_string(index[i]) + " at position " + std::to_string(i) +
                    " is outside 0.." + std::to_string(limit - 1));
  }
}

}  // namespace

// Split by column, so rows with a repeated id never race; within a column, ids add in order.
void embeddingBackward(const TensorView& gradOut, const TensorView& ids, TensorView& gradTable) {
  const int64_t vocab = gradTable.shape[0], dim = gradTable.shape[1], count = ids.numel();
  const int32_t* id = ids.as<const int32_t>();
  checkIndices("embeddingBackward", "token id", id, count, vocab);
  const float* g = gradOut.as<const float>();
  float* table = gradTable.as<float>();
  parallelFor(dim, std::max<int64_t>(64, 16384 / std::max<int64_t>(count, 1)), [&](int64_t c0, int64_t c1) {
    for (int64_t t = 0; t < count; ++t) {
      float* dst = table + id[t] * dim;
      const float* src = g + t * dim;
      for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
    }
  });
}

// With x̂ = (x − mean)·inv and gy = gradOut·w: gradX = inv·(gy − mean(gy) − x̂·mean(gy·x̂)) for LayerNorm and
// inv·(gy − x̂·mean(gy·x̂)) for RMSNorm (mean = 0 there). Rows are split into a fixed number of blocks
// (not tied to the thread count, so results do not change with it), each summing its weight/bias gradient
// into its own f64 row, added up at the end: no races, and x and gradOut are read once (so gradX may alias
// either).
void normBackward(NormKind kind, const TensorView& x, const TensorView& weight, const TensorView& gradOut, double eps,
                  TensorView& gradX, TensorView& gradWeight, TensorView& gradBias) {
  const int64_t dim = x.cols(), rows = dim == 0 ? 0 : x.numel() / dim;
  if (rows == 0) return;
  const bool layer = kind == NormKind::Layer;
  const float* xs = x.as<const float>();
  const float* w = weight.as<const float>();
  const float* gs = gradOut.as<const float>();
  float* gx = gradX.as<float>();
  float* gw = gradWeight.as<float>();
  float* gb = gradBias.numel() > 0 ? gradBias.as<float>() : nullptr;
  const int64_t blocks = std::min<int64_t>(rows, 64);
  std::vector<double> partialW(static_cast<size_t>(blocks * dim), 0.0), partialB(gb ? blocks * dim : 0, 0.0);
  parallelFor(blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<double> xhat(dim), gy(dim), g(dim);
    for (int64_t b = b0; b < b1; ++b) {
      double* pw = partialW.data() + b * dim;
      double* pb = gb ? partialB.data() + b * dim : nullptr;
      for (int64_t r = rows * b / blocks; r < rows * (b + 1) / blocks; ++r) {
        const float* row = xs + r * dim;
        const float* grow = gs + r * dim;
        const auto [mean, inverse] = normStatistics(row, dim, layer, eps);
        double sumGy = 0, sumGyXhat = 0;
        for (int64_t c = 0; c < dim; ++c) {
          g[c] = grow[c];
          xhat[c] = (row[c] - mean) * inverse;
          gy[c] = g[c] * w[c];
          sumGy += gy[c];
          sumGyXhat += gy[c] * xhat[c];
        }
        const double meanGy = layer ? sumGy / static_cast<double>(dim) : 0.0;
        const double meanGyXhat = sumGyXhat / static_cast<double>(dim);
        float* dst = gx + r * dim;
        for (int64_t c = 0; c < dim; ++c) {
          dst[c] = static_cast<float>(inverse * (gy[c] - meanGy - xhat[c] * meanGyXhat));
          pw[c] += g[c] * xhat[c];
        }
        if (pb) {
          for (int64_t c = 0; c < dim; ++c) pb[c] += g[c];
        }
      }
    }
  });
  for (int64_t c = 0; c < dim; ++c) {
    double sumW = 0, sumB = 0;
    for (int64_t b = 0; b < blocks; ++b) {
      sumW += partialW[b * dim + c];
      if (gb) sumB += partialB[b * dim + c];
    }
    gw[c] = static_cast<float>(gw[c] + sumW);
    if (gb) gb[c] = static_cast<float>(gb[c] + sumB);
  }
}

// A rotation's transpose is the rotation by the opposite angle.
void ropeBackward(TensorView& grad, const TensorView& positions, const TensorView& invFreq) {
  rotateHalves(grad, positions, invFreq, true);
}

// Per kv head (one pool task each, so its dK/dV rows have one writer), per query head of its group, per
// block of queries: recompute P = softmax(scale·Q·Kᵀ) over the keys the block can see, then
//   dV += Pᵀ·dO,  dP = dO·Vᵀ,  dS = P∘(dP − rowsum(dO∘O)),  dQ = scale·dS·K,  dK += scale·dSᵀ·Q,
// all as single-threaded GEMMs on strided head slices (leading dimension H·d), as the forward's BLAS path.
void attentionBackward(const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& out,
                       const TensorView& gradOut, TensorView& gradQ, TensorView& gradK, TensorView& gradV, double scale,
                       bool causal) {
  const int64_t queries = q.shape[0], headsQ = q.shape[1], dim = q.shape[2];
  const int64_t keys = k.shape[0], headsK = k.shape[1], group = headsQ / std::max<int64_t>(headsK, 1);
  const int64_t offset = keys - queries;  // query t sits at key position t + offset
  const int64_t qStride = headsQ * dim, kStride = headsK * dim;
  const float *qs = q.as<const float>(), *ks = k.as<const float>(), *vs = v.as<const float>();
  const float *os = out.as<const float>(), *gos = gradOut.as<const float>();
  float *dq = gradQ.as<float>(), *dk = gradK.as<float>(), *dv = gradV.as<float>();
  const float s = static_cast<float>(scale);
  // Two score-sized buffers per task; a block's scores stay at most ~1M floats.
  constexpr int64_t kMaxScores = 1 << 20;
  const int64_t blockQ = std::clamp<int64_t>(kMaxScores / std::max<int64_t>(keys, 1), 1, 128);
  const int blasThreads = ThreadPool::instance().threads();
  setBlasThreads(1);
  try {
    parallelFor(headsK, 1, [&](int64_t hk0, int64_t hk1) {
      const size_t scoreCount = static_cast<size_t>(std::min(blockQ, queries) * keys);
      std::vector<float> probs(scoreCount), dscores(scoreCount);
      std::vector<double> rowDot(static_cast<size_t>(std::min(blockQ, queries)));
      for (int64_t hk = hk0; hk < hk1; ++hk) {
        for (int64_t j = 0; j < keys; ++j) {
          std::fill(dk + j * kStride + hk * dim, dk + j * kStride + (hk + 1) * dim, 0.0f);
          std::fill(dv + j * kStride + hk * dim, dv + j * kStride + (hk + 1) * dim, 0.0f);
        }
        if (queries == 0 || dim == 0) continue;
        const float* kHead = ks + hk * dim;
        const float* vHead = vs + hk * dim;
        float* dkHead = dk + hk * dim;
        float* dvHead = dv + hk * dim;
        for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
          for (int64_t t0 = 0; t0 < queries; t0 += blockQ) {
            throwIfCancelled();
            const int rows = static_cast<int>(std::min(blockQ, queries - t0));
            // keys >= queries (checked by the op), so every row sees at least one key.
            const int visible = static_cast<int>(causal ? std::min<int64_t>(t0 + rows + offset, keys) : keys);
            const float* qBlock = qs + t0 * qStride + h * dim;
            const float* doBlock = gos + t0 * qStride + h * dim;
            const float* oBlock = os + t0 * qStride + h * dim;
            float* dqBlock = dq + t0 * qStride + h * dim;
            const int d = static_cast<int>(dim), ldq = static_cast<int>(qStride), ldk = static_cast<int>(kStride);
            float* p = probs.data();
            float* ds = dscores.data();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, visible, d, s, qBlock, ldq, kHead, ldk, 0.0f, p,
                        visible);
            softmaxVisibleRows(p, rows, visible, t0 + offset, causal);
            for (int64_t r = 0; r < rows; ++r) {
              double dotOut = 0;
              for (int64_t c = 0; c < dim; ++c) dotOut += static_cast<double>(doBlock[r * qStride + c]) * oBlock[r * qStride + c];
              rowDot[r] = dotOut;
            }
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, visible, d, rows, 1.0f, p, visible, doBlock, ldq, 1.0f,
                        dvHead, ldk);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, visible, d, 1.0f, doBlock, ldq, vHead, ldk, 0.0f,
                        ds, visible);
            for (int64_t r = 0; r < rows; ++r) {
              const float* prow = p + r * visible;
              float* drow = ds + r * visible;
              const float shift = static_cast<float>(rowDot[r]);
              // Masked keys have P = 0, so their dS is 0 too (written, not multiplied, in case dP is not finite).
              const int64_t seen = causal ? std::min<int64_t>(t0 + r + offset + 1, visible) : visible;
              for (int64_t j = 0; j < seen; ++j) drow[j] = prow[j] * (drow[j] - shift);
              std::fill(drow + seen, drow + visible, 0.0f);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, visible, s, ds, visible, kHead, ldk, 0.0f,
                        dqBlock, ldq);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, visible, d, rows, s, ds, visible, qBlock, ldq, 1.0f,
                        dkHead, ldk);
          }
        }
      }
    });
  } catch (...) {
    setBlasThreads(blasThreads);
    throw;
  }
  setBlasThreads(blasThreads);
}

// d/dg silu(g) = σ(g)·(1 + g·(1 − σ(g))). Inputs are read before the outputs are written, so either output
// may alias an input.
void siluMulBackward(const TensorView& gate, const TensorView& up, const TensorView& gradOut, TensorView& gradGate,
                     TensorView& gradUp) {
  const float* gs = gate.as<const float>();
  const float* us = up.as<const float>();
  const float* go = gradOut.as<const float>();
  float* dg = gradGate.as<float>();
  float* du = gradUp.as<float>();
  parallelFor(gate.numel(), 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float g = gs[i], u = us[i], d = go[i];
      const float sigma = 1.0f / (1.0f + std::exp(-g));
      dg[i] = d * u * sigma * (1.0f + g * (1.0f - sigma));
      du[i] = d * g * sigma;
    }
  });
}

void activationBackward(UnaryOp op, const TensorView& x, const TensorView& gradOut, TensorView& out) {
  const float* xs = x.as<const float>();
  const float* go = gradOut.as<const float>();
  float* o = out.as<float>();
  parallelFor(x.numel(), 1 << 14, [&](int64_t b, int64_t e) {
    switch (op) {
      case UnaryOp::Relu:
        // relu'(0) = 0, as PyTorch; NaN stays NaN.
        for (int64_t i = b; i < e; ++i) o[i] = xs[i] > 0.0f ? go[i] : (xs[i] != xs[i] ? xs[i] : 0.0f);
        break;
      case UnaryOp::Silu:
        for (int64_t i = b; i < e; ++i) {
          const float v = xs[i], sigma = 1.0f / (1.0f + std::exp(-v));
          o[i] = go[i] * sigma * (1.0f + v * (1.0f - sigma));
        }
        break;
      case UnaryOp::Gelu:
        // Φ(x) + x·φ(x).
        for (int64_t i = b; i < e; ++i) {
          const float v = xs[i];
          const float cdf = 0.5f * (1.0f + std::erf(v * 0.70710678118654752440f));
          const float pdf = 0.39894228040143267794f * std::exp(-0.5f * v * v);
          o[i] = go[i] * (cdf + v * pdf);
        }
        break;
      case UnaryOp::GeluTanh:
        for (int64_t i = b; i < e; ++i) {
          const float v = xs[i];
          const float th = std::tanh(0.79788456080286535588f * (v + 0.044715f * v * v * v));
          const float inner = 0.79788456080286535588f * (1.0f + 3.0f * 0.044715f * v * v);
          o[i] = go[i] * (0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * inner);
        }
        break;
      default:
        fail(ErrorCode::InvalidArgument, "activationBackward: unsupported op");
    }
  });
}

// Split by column; each task sums its columns over all rows in f64.
void columnSums(const TensorView& x, TensorView& out) {
  const int64_t cols = out.numel(), rows = cols == 0 ? 0 : x.numel() / cols;
  const float* xs = x.as<const float>();
  float* o = out.as<float>();
  parallelFor(cols, std::max<int64_t>(64, 16384 / std::max<int64_t>(rows, 1)), [&](int64_t c0, int64_t c1) {
    std::vector<double> sums(c1 - c0, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = xs + r * cols;
      for (int64_t c = c0; c < c1; ++c) sums[c - c0] += row[c];
    }
    for (int64_t c = c0; c < c1; ++c) o[c] = static_cast<float>(o[c] + sums[c - c0]);
  });
}

// exp in f32 (what the gradient needs), the normalizer in f64. gradLogits may alias logits: a row's
// statistics are taken before it is overwritten, element by element.
void crossEntropyBackward(const TensorView& logits, const TensorView& targets, const TensorView& gradNll,
                          TensorView& gradLogits) {
  const int64_t rows = logits.shape[0], vocab = logits.shape[1];
  const int32_t* target = targets.as<const int32_t>();
  checkIndices("crossEntropyBackward", "target", target, rows, vocab);
  const float* l = logits.as<const float>();
  const float* gn = gradNll.as<const float>();
  float* out = gradLogits.as<float>();
  parallelFor(rows, grainFor(vocab), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = l + r * vocab;
      float* dst = out + r * vocab;
      float maxLogit = -INFINITY;
      for (int64_t c = 0; c < vocab; ++c) maxLogit = std::max(maxLogit, row[c]);
      double sum = 0;
      for (int64_t c = 0; c < vocab; ++c) sum += std::exp(row[c] - maxLogit);
      const double targetProb = std::exp(static_cast<double>(row[target[r]]) - maxLogit) / sum;
      const float factor = static_cast<float>(gn[r] / sum);
      for (int64_t c = 0; c < vocab; ++c) dst[c] = std::exp(row[c] - maxLogit) * factor;
      dst[target[r]] = static_cast<float>((targetProb - 1.0) * gn[r]);
    }
  });
}

// Parallel over routed rows: row i writes only gradRows[i] and gradWeights[i]. The dot is taken before
// the row is written, so gradRows may alias rows.
void scatterAddBackward(const TensorView& gradOut, const TensorView& rows, const TensorView& indices,
                        const TensorView& weights, TensorView& gradRows, TensorView& gradWeights) {
  const int64_t targets = gradOut.shape[0], dim = gradOut.shape[1], count = rows.shape[0];
  const int32_t* index = indices.as<const int32_t>();
  checkIndices("scatterAddBackward", "index", index, count, targets);
  const float* g = gradOut.as<const float>();
  const float* rs = rows.as<const float>();
  const float* w = weights.as<const float>();
  float* dr = gradRows.as<float>();
  float* dw = gradWeights.as<float>();
  parallelFor(count, grainFor(dim), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float* src = g + static_cast<int64_t>(index[i]) * dim;
      const float* row = rs + i * dim;
      double dot = 0;
      for (int64_t c = 0; c < dim; ++c) dot += static_cast<double>(src[c]) * row[c];
      const float weight = w[i];
      float* dst = dr + i * dim;
      for (int64_t c = 0; c < dim; ++c) dst[c] = weight * src[c];
      dw[i] = static_cast<float>(dot);
    }
  });
}

// torch.optim.AdamW's update, element by element in f64 (stored back as f32).
void adamwStep(TensorView& param, const TensorView& grad, TensorView& m, TensorView& v, const AdamwOptions& o) {
  float* p = param.as<float>();
  const float* g = grad.as<const float>();
  float* ms = m.as<float>();
  float* vs = v.as<float>();
  const double decay = 1.0 - o.lr * o.weightDecay;
  const double stepSize = o.lr / (1.0 - std::pow(o.beta1, static_cast<double>(o.step)));
  const double correction2 = std::sqrt(1.0 - std::pow(o.beta2, static_cast<double>(o.step)));
  parallelFor(param.numel(), 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const double gi = g[i];
      const double mi = o.beta1 * ms[i] + (1.0 - o.beta1) * gi;
      const double vi = o.beta2 * vs[i] + (1.0 - o.beta2) * gi * gi;
      ms[i] = static_cast<float>(mi);
      vs[i] = static_cast<float>(vi);
      p[i] = static_cast<float>(p[i] * decay - stepSize * mi / (std::sqrt(vi) / correction2 + o.eps));
    }
  });
}

}  // namespace sparq::cpu

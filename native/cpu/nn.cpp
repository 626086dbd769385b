// Transformer building blocks on f32, parallel over rows (or heads × queries). Reductions that decide
// numerics (norm statistics, softmax sums, log-sum-exp) accumulate in f64, so results sit within f32
// rounding of a float64 reference.
#include "nn.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/pool.h"
#include "linalg.h"
#include "simd.h"

namespace sparq::cpu {

namespace {
// Rows per parallel task: enough that a task touches ~16K floats.
int64_t grainFor(int64_t rowLength) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(rowLength, 1)); }
}  // namespace

void embedding(const TensorView& table, const TensorView& ids, TensorView& out) {
  const int64_t vocab = table.shape[0], dim = table.shape[1], count = ids.numel();
  const int32_t* id = ids.as<const int32_t>();
  for (int64_t t = 0; t < count; ++t) {
    SPARQ_CHECK(id[t] >= 0 && id[t] < vocab, ErrorCode::InvalidArgument,
                "embedding: token id " + std::to_string(id[t]) + " at position " + std::to_string(t) +
                    " is outside the vocabulary 0.." + std::to_string(vocab - 1));
  }
  const float* rows = table.as<const float>();
  float* o = out.as<float>();
  parallelFor(count, grainFor(dim), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) memcpy(o + t * dim, rows + id[t] * dim, dim * sizeof(float));
  });
}

RowStatistics normStatistics(const float* row, int64_t dim, bool centre, double eps) {
  double mean = 0;
  if (centre) {
    for (int64_t c = 0; c < dim; ++c) mean += row[c];
    mean /= static_cast<double>(dim);
  }
  double squares = 0;
  for (int64_t c = 0; c < dim; ++c) {
    const double centred = row[c] - mean;
    squares += centred * centred;
  }
  return {mean, 1.0 / std::sqrt(squares / static_cast<double>(dim) + eps)};
}

void norm(NormKind kind, const TensorView& x, const TensorView& weight, const TensorView& bias, double eps, TensorView& out) {
  const int64_t dim = x.cols(), rows = dim == 0 ? 0 : x.numel() / dim;
  const float* xs = x.as<const float>();
  const float* w = weight.as<const float>();
  const float* b = bias.numel() > 0 ? bias.as<const float>() : nullptr;
  float* o = out.as<float>();
  parallelFor(rows, grainFor(dim), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = xs + r * dim;
      float* dst = o + r * dim;
      const RowStatistics stats = normStatistics(row, dim, kind == NormKind::Layer, eps);
      const float inverse = static_cast<float>(stats.inverse);
      const float shift = static_cast<float>(stats.mean);
      for (int64_t c = 0; c < dim; ++c) {
        const float normalized = (row[c] - shift) * inverse;
        dst[c] = b ? normalized * w[c] + b[c] : normalized * w[c];
      }
    }
  });
}

void rope(TensorView& x, const TensorView& positions, const TensorView& invFreq) { rotateHalves(x, positions, invFreq, false); }

// Pairs (i, i + d/2) rotate by position·invFreq[i]; `inverse` rotates by the opposite angle, which is the
// rotation's transpose (rope's backward). sin(−θ) = −sin θ exactly, so both directions share the angles.
void rotateHalves(TensorView& x, const TensorView& positions, const TensorView& invFreq, bool inverse) {
  const int64_t tokens = x.shape[0], heads = x.shape[1], dim = x.shape[2], half = dim / 2;
  const int32_t* pos = positions.as<const int32_t>();
  const float* freq = invFreq.as<const float>();
  float* xs = x.as<float>();
  parallelFor(tokens, grainFor(heads * dim), [&](int64_t t0, int64_t t1) {
    std::vector<float> cosines(half), sines(half);
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t i = 0; i < half; ++i) {
        // The angle in float, as the reference implementations compute it, then cos/sin in double.
        const float angle = static_cast<float>(pos[t]) * freq[i];
        cosines[i] = static_cast<float>(std::cos(static_cast<double>(angle)));
        const float sine = static_cast<float>(std::sin(static_cast<double>(angle)));
        sines[i] = inverse ? -sine : sine;
      }
      for (int64_t h = 0; h < heads; ++h) {
        float* v = xs + (t * heads + h) * dim;
        for (int64_t i = 0; i < half; ++i) {
          const float a = v[i], b = v[i + half];
          v[i] = a * cosines[i] - b * sines[i];
          v[i + half] = b * cosines[i] + a * sines[i];
        }
      }
    }
  });
}

// Row r of a block of scores [rows, visible] (its first query at key position firstKey, i.e. query index +
// key offset) sees keys 0…firstKey + r when causal: softmax over those, in f64 sums, and zeros after.
void softmaxVisibleRows(float* scores, int64_t rows, int64_t visible, int64_t firstKey, bool causal) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = scores + r * visible;
    const int64_t seen = causal ? std::min<int64_t>(firstKey + r + 1, visible) : visible;
    float maxScore = -INFINITY;
    for (int64_t j = 0; j < seen; ++j) maxScore = std::max(maxScore, row[j]);
    double sum = 0;
    for (int64_t j = 0; j < seen; ++j) {
      row[j] = std::exp(row[j] - maxScore);
      sum += row[j];
    }
    const float inverse = static_cast<float>(1.0 / sum);
    for (int64_t j = 0; j < seen; ++j) row[j] *= inverse;
    std::fill(row + seen, row + visible, 0.0f);
  }
}

namespace {

// A dot product in 16 independent partial sums: the compiler may not reorder a float sum on its own,
// and one running sum would leave the vector units idle.
SPARQ_INLINE float dot(const float* a, const float* b, int64_t n) {
  float lanes[16] = {};
  int64_t c = 0;
  for (; c + 16 <= n; c += 16) {
    for (int l = 0; l < 16; ++l) lanes[l] += a[c + l] * b[c + l];
  }
  float sum = 0;
  for (; c < n; ++c) sum += a[c] * b[c];
  for (int l = 0; l < 16; ++l) sum += lanes[l];
  return sum;
}

struct AttentionArgs {
  const float *qs, *ks, *vs;
  float* os;
  int64_t queries, headsQ, dim, keys, group, offset, keyStride;
  float scale;
  bool causal;
};

constexpr int64_t kKeyBlock = 64;

// Items [i0, i1) of queries × heads, one (query, head) at a time with an online softmax over blocks of
// keys, so memory stays O(block + head_dim): scores of a block, then one rescale of the running output
// per block. Scores and the running output are f32 (vectorized); the normalizer is accumulated in f64.
SPARQ_INLINE void attentionItemsBody(const AttentionArgs& a, int64_t i0, int64_t i1, float* accumulator, float* scores) {
  const int64_t dim = a.dim;
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t t = item / a.headsQ, h = item % a.headsQ, hk = h / a.group;
    const float* query = a.qs + (t * a.headsQ + h) * dim;
    const float* keyBase = a.ks + hk * dim;
    const float* valueBase = a.vs + hk * dim;
    const int64_t visible = a.causal ? std::min(a.keys, t + a.offset + 1) : a.keys;
    float maxScore = -INFINITY;
    double sum = 0;
    for (int64_t c = 0; c < dim; ++c) accumulator[c] = 0.0f;
    for (int64_t j0 = 0; j0 < visible; j0 += kKeyBlock) {
      const int64_t count = std::min(kKeyBlock, visible - j0);
      float blockMax = -INFINITY;
      for (int64_t j = 0; j < count; ++j) {
        scores[j] = dot(query, keyBase + (j0 + j) * a.keyStride, dim) * a.scale;
        blockMax = std::max(blockMax, scores[j]);
      }
      if (blockMax > maxScore) {
        // Rescale what was accumulated under the old maximum.
        const float factor = std::exp(maxScore - blockMax);
        sum *= factor;
        for (int64_t c = 0; c < dim; ++c) accumulator[c] *= factor;
        maxScore = blockMax;
      }
      for (int64_t j = 0; j < count; ++j) {
        const float weight = std::exp(scores[j] - maxScore);
        sum += weight;
        const float* value = valueBase + (j0 + j) * a.keyStride;
        for (int64_t c = 0; c < dim; ++c) accumulator[c] += weight * value[c];
      }
    }
    float* o = a.os + (t * a.headsQ + h) * dim;
    const float inverse = visible > 0 ? static_cast<float>(1.0 / sum) : 0.0f;
    for (int64_t c = 0; c < dim; ++c) o[c] = accumulator[c] * inverse;
  }
}

using AttentionItemsFn = void (*)(const AttentionArgs&, int64_t, int64_t, float*, float*);
void attentionItemsGeneric(const AttentionArgs& a, int64_t i0, int64_t i1, float* acc, float* scores) {
  attentionItemsBody(a, i0, i1, acc, scores);
}
SPARQ_TARGET_AVX2 void attentionItemsAvx2(const AttentionArgs& a, int64_t i0, int64_t i1, float* acc, float* scores) {
  attentionItemsBody(a, i0, i1, acc, scores);
}
SPARQ_TARGET_AVX512 void attentionItemsAvx512(const AttentionArgs& a, int64_t i0, int64_t i1, float* acc, float* scores) {
  attentionItemsBody(a, i0, i1, acc, scores);
}

// The same attention as two GEMMs per (head, block of queries): S = scale·q·kᵀ over the keys the block
// can see, a row softmax (f64 normalizer, keys past a row's causal limit get weight 0), then out = P·v.
// Only one block of scores (at most ~1M floats) per thread exists at a time. Heads run in parallel on
// the pool, each with single-threaded BLAS calls: these GEMMs are too small to split, and OpenBLAS
// threads spinning between calls would fight the pool for the cores.
void attentionBlas(const AttentionArgs& a) {
  constexpr int64_t kMaxScores = 1 << 20;
  const int64_t blockQ = std::clamp<int64_t>(kMaxScores / std::max<int64_t>(a.keys, 1), 1, 256);
  const int64_t queryStride = a.headsQ * a.dim;
  const int blasThreads = ThreadPool::instance().threads();
  setBlasThreads(1);
  try {
    parallelFor(a.headsQ, 1, [&](int64_t h0, int64_t h1) {
      std::vector<float> scores(static_cast<size_t>(std::min(blockQ, a.queries) * a.keys));
      for (int64_t h = h0; h < h1; ++h) {
        const int64_t hk = h / a.group;
        for (int64_t t0 = 0; t0 < a.queries; t0 += blockQ) {
          const int64_t rows = std::min(blockQ, a.queries - t0);
          // keys >= queries (checked by the op), so every row sees at least one key.
          const int64_t visible = a.causal ? std::min<int64_t>(t0 + rows + a.offset, a.keys) : a.keys;
          float* out = a.os + t0 * queryStride + h * a.dim;
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(visible),
                      static_cast<int>(a.dim), a.scale, a.qs + t0 * queryStride + h * a.dim,
                      static_cast<int>(queryStride), a.ks + hk * a.dim, static_cast<int>(a.keyStride), 0.0f,
                      scores.data(), static_cast<int>(visible));
          softmaxVisibleRows(scores.data(), rows, visible, t0 + a.offset, a.causal);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(a.dim),
                      static_cast<int>(visible), 1.0f, scores.data(), static_cast<int>(visible), a.vs + hk * a.dim,
                      static_cast<int>(a.keyStride), 0.0f, out, static_cast<int>(queryStride));
        }
      }
    });
  } catch (...) {
    setBlasThreads(blasThreads);
    throw;
  }
  setBlasThreads(blasThreads);
}

}  // namespace

void attention(const TensorView& q, const TensorView& k, const TensorView& v, TensorView& out, double scale, bool causal) {
  AttentionArgs a;
  a.queries = q.shape[0];
  a.headsQ = q.shape[1];
  a.dim = q.shape[2];
  a.keys = k.shape[0];
  a.group = a.headsQ / k.shape[1];
  a.offset = a.keys - a.queries;  // query t sits at key position t + offset
  a.keyStride = k.shape[1] * a.dim;
  a.qs = q.as<const float>();
  a.ks = k.as<const float>();
  a.vs = v.as<const float>();
  a.os = out.as<float>();
  a.scale = static_cast<float>(scale);
  a.causal = causal;
  // The scalar variant keeps the online-softmax kernel as the reference; the vector variants use BLAS.
  if (activeIsa() != Isa::Scalar && a.queries * a.keys >= 4096) return attentionBlas(a);
  const AttentionItemsFn fn = pickKernel(attentionItemsGeneric, attentionItemsAvx2, attentionItemsAvx512);
  parallelFor(a.queries * a.headsQ, std::max<int64_t>(1, 4096 / std::max<int64_t>(a.keys * a.dim / 64, 1)), [&](int64_t i0, int64_t i1) {
    std::vector<float> accumulator(a.dim), scores(kKeyBlock);
    fn(a, i0, i1, accumulator.data(), scores.data());
  });
}

void siluMul(const TensorView& gate, const TensorView& up, TensorView& out) {
  const float* g = gate.as<const float>();
  const float* u = up.as<const float>();
  float* o = out.as<float>();
  parallelFor(gate.numel(), 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  });
}

void addBias(TensorView& x, const TensorView& bias) {
  const int64_t cols = x.cols(), rows = cols == 0 ? 0 : x.numel() / cols;
  float* xs = x.as<float>();
  const float* b = bias.as<const float>();
  parallelFor(rows, grainFor(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t c = 0; c < cols; ++c) xs[r * cols + c] += b[c];
    }
  });
}

void crossEntropy(const TensorView& logits, const TensorView& targets, TensorView& nll) {
  const int64_t rows = logits.shape[0], vocab = logits.shape[1];
  const float* l = logits.as<const float>();
  const int32_t* target = targets.as<const int32_t>();
  for (int64_t r = 0; r < rows; ++r) {
    SPARQ_CHECK(target[r] >= 0 && target[r] < vocab, ErrorCode::InvalidArgument,
                "crossEntropy: target " + std::to_string(target[r]) + " at row " + std::to_string(r) +
                    " is outside 0.." + std::to_string(vocab - 1));
  }
  float* out = nll.as<float>();
  parallelFor(rows, grainFor(vocab), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = l + r * vocab;
      double maxLogit = -INFINITY;
      for (int64_t c = 0; c < vocab; ++c) maxLogit = std::max(maxLogit, static_cast<double>(row[c]));
      double sum = 0;
      for (int64_t c = 0; c < vocab; ++c) sum += std::exp(row[c] - maxLogit);
      out[r] = static_cast<float>(maxLogit + std::log(sum) - row[target[r]]);
    }
  });
}

// Threads split the columns, so rows sent to the same target never race.
void scatterAdd(TensorView& out, const TensorView& rows, const TensorView& indices, const TensorView& weights) {
  const int64_t targets = out.shape[0], dim = out.shape[1], count = rows.shape[0];
  const int32_t* index = indices.as<const int32_t>();
  for (int64_t i = 0; i < count; ++i) {
    SPARQ_CHECK(index[i] >= 0 && index[i] < targets, ErrorCode::InvalidArgument,
                "scatterAdd: index " + std::to_string(index[i]) + " at row " + std::to_string(i) + " is outside 0.." +
                    std::to_string(targets - 1));
  }
  float* o = out.as<float>();
  const float* r = rows.as<const float>();
  const float* w = weights.as<const float>();
  parallelFor(dim, std::max<int64_t>(16, 16384 / std::max<int64_t>(count, 1)), [&](int64_t c0, int64_t c1) {
    for (int64_t i = 0; i < count; ++i) {
      float* target = o + index[i] * dim;
      const float* row = r + i * dim;
      for (int64_t c = c0; c < c1; ++c) target[c] += w[i] * row[c];
    }
  });
}

}  // namespace sparq::cpu

#pragma once
#include "core/backend.h"

namespace sparq::cpu {

void embedding(const TensorView& table, const TensorView& ids, TensorView& out);
// A norm's row statistics in f64: the mean (0 unless `centre`, i.e. LayerNorm) and 1/sqrt(var + eps),
// the variance taken around that mean (RMSNorm: the mean square).
struct RowStatistics {
  double mean;
  double inverse;
};
RowStatistics normStatistics(const float* row, int64_t dim, bool centre, double eps);
void norm(NormKind kind, const TensorView& x, const TensorView& weight, const TensorView& bias, double eps, TensorView& out);
void rope(TensorView& x, const TensorView& positions, const TensorView& invFreq);
void rotateHalves(TensorView& x, const TensorView& positions, const TensorView& invFreq, bool inverse);
// Softmax of each row of a block of attention scores over the keys it may see (see nn.cpp).
void softmaxVisibleRows(float* scores, int64_t rows, int64_t visible, int64_t firstKey, bool causal);
void attention(const TensorView& q, const TensorView& k, const TensorView& v, TensorView& out, double scale, bool causal);
void siluMul(const TensorView& gate, const TensorView& up, TensorView& out);
void addBias(TensorView& x, const TensorView& bias);
void crossEntropy(const TensorView& logits, const TensorView& targets, TensorView& nll);
void scatterAdd(TensorView& out, const TensorView& rows, const TensorView& indices, const TensorView& weights);

}  // namespace sparq::cpu

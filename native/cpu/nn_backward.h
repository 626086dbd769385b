#pragma once
#include "core/backend.h"

namespace sparq::cpu {

void embeddingBackward(const TensorView& gradOut, const TensorView& ids, TensorView& gradTable);
void normBackward(NormKind kind, const TensorView& x, const TensorView& weight, const TensorView& gradOut, double eps,
                  TensorView& gradX, TensorView& gradWeight, TensorView& gradBias);
void ropeBackward(TensorView& grad, const TensorView& positions, const TensorView& invFreq);
void attentionBackward(const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& out,
                       const TensorView& gradOut, TensorView& gradQ, TensorView& gradK, TensorView& gradV, double scale,
                       bool causal);
void siluMulBackward(const TensorView& gate, const TensorView& up, const TensorView& gradOut, TensorView& gradGate,
                     TensorView& gradUp);
void activationBackward(UnaryOp op, const TensorView& x, const TensorView& gradOut, TensorView& out);
void columnSums(const TensorView& x, TensorView& out);
void crossEntropyBackward(const TensorView& logits, const TensorView& targets, const TensorView& gradNll,
                          TensorView& gradLogits);
void scatterAddBackward(const TensorView& gradOut, const TensorView& rows, const TensorView& indices,
                        const TensorView& weights, TensorView& gradRows, TensorView& gradWeights);
void adamwStep(TensorView& param, const TensorView& grad, TensorView& m, TensorView& v, const AdamwOptions& options);

}  // namespace sparq::cpu

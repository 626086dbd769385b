// Argument checks shared by every backend: shapes, dtypes and devices of each op, with messages that
// name the argument, what was expected and what was received. The N-API layer runs them before any
// backend sees the tensors.
#pragma once
#include "op_types.h"
#include "tensor.h"

namespace sparq {

void checkGemm(const TensorView& a, bool transA, const TensorView& b, bool transB, const TensorView& c);
void checkSyrk(const TensorView& x, const TensorView& c);
void checkCholesky(const TensorView& a, const TensorView& out, const CholeskyOptions& options);
void checkTrsm(const TensorView& t, const TensorView& b, bool left);
void checkConvert(const TensorView& src, const TensorView& dst);
void checkTopkMask(const TensorView& scores, int64_t k, const TensorView& mask);
void checkEigh(const TensorView& a, const TensorView& values, const TensorView& vectors);
void checkMaskedCg(const TensorView& h, const TensorView& g, const TensorView& mask, const TensorView& x,
                   const MaskedCgOptions& options);
void checkAlpsAdmmStep(const TensorView& g, const TensorView& inverse, const TensorView& factors, const TensorView& back,
                       double rho, int64_t kept, int n, int m, const TensorView& v, const TensorView& z,
                       const TensorView& b, const TensorView& work, const TensorView& support,
                       const TensorView& previous);
void checkScaleColumns(const TensorView& x, const TensorView& scale, const TensorView& out);
void checkDot(const TensorView& a, const TensorView& b);
void checkColumnSweep(const TensorView& w, const TensorView& hinvUpper, const SweepOptions& options);
void checkQuantizeRtn(const TensorView& w, const QuantGrid& grid, const TensorView& groupOf, const TensorView& codes,
                      const TensorView& scales, const TensorView& zeros, const TensorView& out);
void checkPacking(const TensorView& codes, int bits, const TensorView& packed, const char* op);
void checkDequantizePacked(const TensorView& packed, int bits, const TensorView& scales, const TensorView& zeros,
                           const TensorView& groupOf, int64_t groupSize, const TensorView& out);
void checkNmMask(const TensorView& scores, int n, int m, const TensorView& mask);
void checkThresholdMask(const TensorView& scores, const TensorView& mask);
void checkApplyMask(const TensorView& x, const TensorView& mask, const TensorView& out);
void checkAxpy(const TensorView& x, const TensorView& y);
void checkUnary(UnaryOp op, const TensorView& x, const TensorView& out);
void checkEmbedding(const TensorView& table, const TensorView& ids, const TensorView& out);
void checkNorm(NormKind kind, const TensorView& x, const TensorView& weight, const TensorView& bias, const TensorView& out,
               double eps);
void checkRope(const TensorView& x, const TensorView& positions, const TensorView& invFreq);
void checkAttention(const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& out);
void checkSiluMul(const TensorView& gate, const TensorView& up, const TensorView& out);
void checkAddBias(const TensorView& x, const TensorView& bias);
void checkCrossEntropy(const TensorView& logits, const TensorView& targets, const TensorView& nll);
void checkScatterAdd(const TensorView& out, const TensorView& rows, const TensorView& indices, const TensorView& weights);
void checkEmbeddingBackward(const TensorView& gradOut, const TensorView& ids, const TensorView& gradTable);
void checkNormBackward(NormKind kind, const TensorView& x, const TensorView& weight, const TensorView& gradOut, double eps,
                       const TensorView& gradX, const TensorView& gradWeight, const TensorView& gradBias);
void checkRopeBackward(const TensorView& grad, const TensorView& positions, const TensorView& invFreq);
void checkAttentionBackward(const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& out,
                            const TensorView& gradOut, const TensorView& gradQ, const TensorView& gradK,
                            const TensorView& gradV, double scale);
void checkSiluMulBackward(const TensorView& gate, const TensorView& up, const TensorView& gradOut,
                          const TensorView& gradGate, const TensorView& gradUp);
void checkActivationBackward(UnaryOp op, const TensorView& x, const TensorView& gradOut, const TensorView& out);
void checkColumnSums(const TensorView& x, const TensorView& out);
void checkCrossEntropyBackward(const TensorView& logits, const TensorView& targets, const TensorView& gradNll,
                               const TensorView& gradLogits);
void checkScatterAddBackward(const TensorView& gradOut, const TensorView& rows, const TensorView& indices,
                             const TensorView& weights, const TensorView& gradRows, const TensorView& gradWeights);
void checkAdamwStep(const TensorView& param, const TensorView& grad, const TensorView& m, const TensorView& v,
                    const AdamwOptions& options);

}  // namespace sparq

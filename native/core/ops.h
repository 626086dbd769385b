// Argument checks shared by every backend: shapes, dtypes and devices of each op, with messages that
// name the argument, what was expected and what was received. The N-API layer runs them before any
// backend sees the tensors.
#pragma once
#include "backend.h"

namespace sparq {

void checkGemm(const TensorView& a, bool transA, const TensorView& b, bool transB, const TensorView& c);
void checkSyrk(const TensorView& x, const TensorView& c);
void checkCholesky(const TensorView& a, const TensorView& out, const CholeskyOptions& options);
void checkTrsm(const TensorView& t, const TensorView& b, bool left);
void checkConvert(const TensorView& src, const TensorView& dst);
void checkTopkMask(const TensorView& scores, int64_t k, const TensorView& mask);
void checkNmMask(const TensorView& scores, int n, int m, const TensorView& mask);
void checkThresholdMask(const TensorView& scores, const TensorView& mask);
void checkApplyMask(const TensorView& x, const TensorView& mask, const TensorView& out);
void checkAxpy(const TensorView& x, const TensorView& y);
void checkUnary(UnaryOp op, const TensorView& x, const TensorView& out);

}  // namespace sparq

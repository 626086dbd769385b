#pragma once
#include "core/backend.h"

namespace sparq::cpu {

void gemm(const TensorView& a, bool transA, const TensorView& b, bool transB, TensorView& c, double alpha,
          double beta);
void syrk(const TensorView& x, TensorView& c, double alpha, double beta, bool fillUpper);
CholeskyReport cholesky(const TensorView& a, TensorView& out, const CholeskyOptions& options);
void trsm(const TensorView& t, TensorView& b, bool lower, bool transT, bool left, bool unitDiagonal, double alpha);
// Tells OpenBLAS how many threads to use (the pool's size).
void setBlasThreads(int threads);

}  // namespace sparq::cpu

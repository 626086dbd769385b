#pragma once
#include "core/backend.h"

namespace sparq::cpu {

void eigh(const TensorView& a, TensorView& values, TensorView& vectors);
MaskedCgReport maskedCg(const TensorView& h, const TensorView& g, const TensorView& mask, TensorView& x,
                        const MaskedCgOptions& options);
// One fused ADMM iteration (AlpsAdmmStepOp in core/op_table.h); returns the support changes.
double alpsAdmmStep(const TensorView& g, const TensorView& inverse, const TensorView& factors, const TensorView& back,
                    double rho, int64_t kept, int n, int m, TensorView& v, TensorView& z, TensorView& b,
                    TensorView& work, TensorView& support, const TensorView& previous);

}  // namespace sparq::cpu

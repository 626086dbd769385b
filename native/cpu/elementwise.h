#pragma once
#include "core/backend.h"

namespace sparq::cpu {

void axpy(double alpha, const TensorView& x, TensorView& y);
void scaleColumns(const TensorView& x, const TensorView& scale, TensorView& out);
double dot(const TensorView& a, const TensorView& b);
void unary(UnaryOp op, const TensorView& x, TensorView& out, double a, double b);

}  // namespace sparq::cpu

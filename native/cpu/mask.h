#pragma once
#include "core/tensor.h"

namespace sparq::cpu {

void topkMask(const TensorView& scores, int64_t k, bool largest, TensorView& mask);
void nmMask(const TensorView& scores, int n, int m, bool largest, TensorView& mask);
void thresholdMask(const TensorView& scores, double threshold, TensorView& mask);
void applyMask(const TensorView& x, const TensorView& mask, TensorView& out);

}  // namespace sparq::cpu

#pragma once
#include "core/tensor.h"

namespace sparq::cpu {

void convert(const TensorView& src, TensorView& dst);

}  // namespace sparq::cpu

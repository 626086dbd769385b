#pragma once
#include "core/backend.h"

namespace sparq::cpu {

void eigh(const TensorView& a, TensorView& values, TensorView& vectors);
MaskedCgReport maskedCg(const TensorView& h, const TensorView& g, const TensorView& mask, TensorView& x,
                        const MaskedCgOptions& options);

}  // namespace sparq::cpu

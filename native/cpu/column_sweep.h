#pragma once
#include "core/backend.h"

namespace sparq::cpu {

void columnSweep(TensorView& w, const TensorView& hinvUpper, const SweepOptions& options);

}  // namespace sparq::cpu

#pragma once
#include "core/backend.h"

namespace sparq::cpu {

void sparsegptPrune(TensorView& w, const TensorView& hinvUpper, const SparseGptOptions& options);

}  // namespace sparq::cpu

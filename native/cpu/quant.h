#pragma once
#include "core/backend.h"

namespace sparq::cpu {

void quantizeRtn(const TensorView& w, const QuantGrid& grid, const TensorView& groupOf, TensorView& codes, TensorView& scales,
                 TensorView& zeros, TensorView& out);
void packCodes(const TensorView& codes, int bits, TensorView& packed);
void unpackCodes(const TensorView& packed, int bits, TensorView& codes);
void dequantizePacked(const TensorView& packed, int bits, const TensorView& scales, const TensorView& zeros,
                      const TensorView& groupOf, int64_t groupSize, TensorView& out);

}  // namespace sparq::cpu

// Element type conversion on the device, bit-identical to the CPU reference (core/half.h): floats go
// through f32 exactly, f64 sources round once (round-to-odd into f32 first).
#include "common.cuh"
#include "core/half.h"
#include "kernels.h"

namespace sparq::cuda {

namespace {

__device__ double readElement(const void* data, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(data)[i];
    case DType::F16: return halfToFloatRef(static_cast<const uint16_t*>(data)[i]);
    case DType::BF16: return bf16ToFloatRef(static_cast<const uint16_t*>(data)[i]);
    case DType::F64: return static_cast<const double*>(data)[i];
    case DType::I8: return static_cast<const int8_t*>(data)[i];
    case DType::U8: return static_cast<const uint8_t*>(data)[i];
    case DType::I32: return static_cast<const int32_t*>(data)[i];
    case DType::I64: return static_cast<double>(static_cast<const int64_t*>(data)[i]);
  }
  return 0;
}

__device__ bool isNarrowFloat(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

__device__ float readNarrowFloat(const void* data, DType t, int64_t i) {
  if (t == DType::F16) return halfToFloatRef(static_cast<const uint16_t*>(data)[i]);
  if (t == DType::BF16) return bf16ToFloatRef(static_cast<const uint16_t*>(data)[i]);
  return static_cast<const float*>(data)[i];
}

__global__ void convertKernel(const void* src, DType from, void* dst, DType to, int64_t count) {
  SPARQ_GRID_STRIDE(i, count) {
    if (isNarrowFloat(from) && to != DType::F64) {
      // Stay in f32 bits (a detour through double could canonicalize NaN payloads on the device).
      const float v = readNarrowFloat(src, from, i);
      if (to == DType::F32) static_cast<float*>(dst)[i] = v;
      else if (to == DType::F16) static_cast<uint16_t*>(dst)[i] = floatToHalfRef(v);
      else static_cast<uint16_t*>(dst)[i] = floatToBF16Ref(v);
      continue;
    }
    // f64 and integer sources, and f64 destinations: one rounding from the double.
    const double v = readElement(src, from, i);
    switch (to) {
      case DType::F64: static_cast<double*>(dst)[i] = v; break;
      case DType::F32: static_cast<float*>(dst)[i] = static_cast<float>(v); break;
      case DType::F16: static_cast<uint16_t*>(dst)[i] = doubleToHalfRef(v); break;
      case DType::BF16: static_cast<uint16_t*>(dst)[i] = doubleToBF16Ref(v); break;
      default: break;
    }
  }
}

}  // namespace

void convert(const void* src, DType from, void* dst, DType to, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  if (from == to) {
    if (cudaMemcpyAsync(dst, src, count * dtypeSize(from), cudaMemcpyDeviceToDevice, stream) != cudaSuccess) {
      checkLaunch("convert (copy)");
    }
    return;
  }
  convertKernel<<<gridFor(count), kThreads, 0, stream>>>(src, from, dst, to, count);
  checkLaunch("convert");
}

}  // namespace sparq::cuda

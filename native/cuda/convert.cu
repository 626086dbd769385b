// Element type conversion on the device, bit-identical to the CPU reference (core/half.h, cpu/convert.cpp):
// f32, f16 and bf16 convert among themselves through f32 bits; f64 and integer sources round once from
// double (round-to-odd into f32 first for f16/bf16). Every (source, destination) pair is its own kernel,
// so the inner loop has no type switch.
#include "common.cuh"
#include "core/half.h"
#include "kernels.h"

namespace sparq::cuda {

namespace {

__host__ __device__ constexpr bool isNarrowFloat(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

// f32 -> f64 and back with NaN handled in integer bits, as the CPU does (x86 cvtss2sd / cvtsd2ss: sign
// kept, quiet bit set, payload widened or truncated to its top bits). The GPU's own conversion
// instructions are not promised to keep NaN payloads.
__device__ inline double widenFloat(float f) {
  const uint32_t bits = __float_as_uint(f);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) {
    const uint64_t sign = static_cast<uint64_t>(bits & 0x80000000u) << 32;
    const uint64_t payload = static_cast<uint64_t>(bits & 0x007FFFFFu) << 29;
    return __longlong_as_double(static_cast<long long>(sign | 0x7FF8000000000000ull | payload));
  }
  return static_cast<double>(f);
}

__device__ inline bool isNaNDouble(double d) {
  return (static_cast<uint64_t>(__double_as_longlong(d)) & 0x7FFFFFFFFFFFFFFFull) > 0x7FF0000000000000ull;
}

__device__ inline float narrowNaN(double d) {
  const uint64_t bits = static_cast<uint64_t>(__double_as_longlong(d));
  const uint32_t sign = static_cast<uint32_t>(bits >> 32) & 0x80000000u;
  const uint32_t payload = static_cast<uint32_t>(bits >> 29) & 0x007FFFFFu;
  return __uint_as_float(sign | 0x7FC00000u | payload);
}

template <DType From>
__device__ inline float readFloat(const void* data, int64_t i) {
  if constexpr (From == DType::F16) return halfToFloatRef(static_cast<const uint16_t*>(data)[i]);
  else if constexpr (From == DType::BF16) return bf16ToFloatRef(static_cast<const uint16_t*>(data)[i]);
  else return static_cast<const float*>(data)[i];
}

template <DType From>
__device__ inline double readDouble(const void* data, int64_t i) {
  if constexpr (isNarrowFloat(From)) return widenFloat(readFloat<From>(data, i));
  else if constexpr (From == DType::F64) return static_cast<const double*>(data)[i];
  else if constexpr (From == DType::I8) return static_cast<const int8_t*>(data)[i];
  else if constexpr (From == DType::U8) return static_cast<const uint8_t*>(data)[i];
  else if constexpr (From == DType::I32) return static_cast<const int32_t*>(data)[i];
  else return static_cast<double>(static_cast<const int64_t*>(data)[i]);  // I64: rounds past 2^53, as on the CPU
}

template <DType To>
__device__ inline void writeFromFloat(void* data, int64_t i, float v) {
  if constexpr (To == DType::F16) static_cast<uint16_t*>(data)[i] = floatToHalfRef(v);
  else if constexpr (To == DType::BF16) static_cast<uint16_t*>(data)[i] = floatToBF16Ref(v);
  else static_cast<float*>(data)[i] = v;
}

template <DType To>
__device__ inline void writeFromDouble(void* data, int64_t i, double v) {
  if constexpr (To == DType::F64) {
    static_cast<double*>(data)[i] = v;
  } else if (isNaNDouble(v)) {
    writeFromFloat<To>(data, i, narrowNaN(v));
  } else if constexpr (To == DType::F32) {
    static_cast<float*>(data)[i] = __double2float_rn(v);
  } else if constexpr (To == DType::F16) {
    static_cast<uint16_t*>(data)[i] = doubleToHalfRef(v);
  } else {
    static_cast<uint16_t*>(data)[i] = doubleToBF16Ref(v);
  }
}

template <DType From, DType To>
__global__ void convertKernel(const void* src, void* dst, int64_t count) {
  SPARQ_GRID_STRIDE(i, count) {
    if constexpr (isNarrowFloat(From) && isNarrowFloat(To)) {
      writeFromFloat<To>(dst, i, readFloat<From>(src, i));
    } else {
      writeFromDouble<To>(dst, i, readDouble<From>(src, i));
    }
  }
}

template <DType From, DType To>
void launchConvert(const void* src, void* dst, int64_t count, cudaStream_t stream) {
  convertKernel<From, To><<<gridFor(count), kThreads, 0, stream>>>(src, dst, count);
}

template <DType From>
void launchFrom(const void* src, void* dst, DType to, int64_t count, cudaStream_t stream) {
  switch (to) {
    case DType::F32: return launchConvert<From, DType::F32>(src, dst, count, stream);
    case DType::F16: return launchConvert<From, DType::F16>(src, dst, count, stream);
    case DType::BF16: return launchConvert<From, DType::BF16>(src, dst, count, stream);
    case DType::F64: return launchConvert<From, DType::F64>(src, dst, count, stream);
    default:
      fail(ErrorCode::Internal, std::string("convert: no conversion to ") + dtypeName(to));
  }
}

}  // namespace

void convert(const void* src, DType from, void* dst, DType to, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  if (from == to) {
    const cudaError_t status =
        cudaMemcpyAsync(dst, src, static_cast<size_t>(count) * dtypeSize(from), cudaMemcpyDeviceToDevice, stream);
    if (status != cudaSuccess) {
      fail(ErrorCode::Internal, std::string("convert: cudaMemcpyAsync: ") + cudaGetErrorString(status));
    }
    return;
  }
  switch (from) {
    case DType::F32: launchFrom<DType::F32>(src, dst, to, count, stream); break;
    case DType::F16: launchFrom<DType::F16>(src, dst, to, count, stream); break;
    case DType::BF16: launchFrom<DType::BF16>(src, dst, to, count, stream); break;
    case DType::F64: launchFrom<DType::F64>(src, dst, to, count, stream); break;
    case DType::I8: launchFrom<DType::I8>(src, dst, to, count, stream); break;
    case DType::U8: launchFrom<DType::U8>(src, dst, to, count, stream); break;
    case DType::I32: launchFrom<DType::I32>(src, dst, to, count, stream); break;
    case DType::I64: launchFrom<DType::I64>(src, dst, to, count, stream); break;
  }
  checkLaunch("convert");
}

}  // namespace sparq::cuda

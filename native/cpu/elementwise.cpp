// Elementwise ops on f32/f64. One always-inline body per op, instantiated for the baseline (the
// reference) and for AVX2 and AVX-512, where the compiler vectorizes it. Copy is a parallel memcpy and
// doubles as the memory-bandwidth probe in the benchmarks.
#include "elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/pool.h"
#include "isa.h"
#include "simd.h"

namespace sparq::cpu {

namespace {

constexpr int64_t kChunk = 1 << 16;

template <typename T>
SPARQ_INLINE void axpyBody(T alpha, const T* x, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

template <typename T>
SPARQ_INLINE void unaryBody(UnaryOp op, const T* x, T* out, int64_t n, T a, T b) {
  switch (op) {
    case UnaryOp::Copy:
      memmove(out, x, n * sizeof(T));
      break;
    case UnaryOp::Abs:
      for (int64_t i = 0; i < n; ++i) out[i] = x[i] < T(0) ? -x[i] : (x[i] == T(0) ? T(0) : x[i]);
      break;
    case UnaryOp::Square:
      for (int64_t i = 0; i < n; ++i) out[i] = x[i] * x[i];
      break;
    case UnaryOp::Scale:
      for (int64_t i = 0; i < n; ++i) out[i] = a * x[i];
      break;
    case UnaryOp::Clamp:
      // NaN stays NaN: both comparisons are false for it.
      for (int64_t i = 0; i < n; ++i) out[i] = x[i] < a ? a : (x[i] > b ? b : x[i]);
      break;
    case UnaryOp::Relu:
      for (int64_t i = 0; i < n; ++i) out[i] = x[i] > T(0) ? x[i] : (x[i] != x[i] ? x[i] : T(0));
      break;
    case UnaryOp::Silu:
      for (int64_t i = 0; i < n; ++i) out[i] = x[i] / (T(1) + std::exp(-x[i]));
      break;
    case UnaryOp::Gelu:
      for (int64_t i = 0; i < n; ++i) out[i] = T(0.5) * x[i] * (T(1) + std::erf(x[i] * T(0.70710678118654752440)));
      break;
    case UnaryOp::GeluTanh:
      for (int64_t i = 0; i < n; ++i) {
        const T v = x[i];
        out[i] = T(0.5) * v * (T(1) + std::tanh(T(0.79788456080286535588) * (v + T(0.044715) * v * v * v)));
      }
      break;
  }
}

// Eight independent f64 lanes, so the compiler can vectorize the sum without reassociating it.
template <typename T>
SPARQ_INLINE double dotBody(const T* a, const T* b, int64_t n) {
  double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) lanes[k] += static_cast<double>(a[i + k]) * static_cast<double>(b[i + k]);
  }
  for (; i < n; ++i) lanes[i % 8] += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}
template <typename T>
double dotGeneric(const T* a, const T* b, int64_t n) {
  return dotBody(a, b, n);
}
template <typename T>
SPARQ_TARGET_AVX2 double dotAvx2(const T* a, const T* b, int64_t n) {
  return dotBody(a, b, n);
}
template <typename T>
SPARQ_TARGET_AVX512 double dotAvx512(const T* a, const T* b, int64_t n) {
  return dotBody(a, b, n);
}

SPARQ_INLINE void scaleRowBody(const float* x, const float* scale, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale[i];
}
void scaleRowGeneric(const float* x, const float* scale, float* out, int64_t n) { scaleRowBody(x, scale, out, n); }
SPARQ_TARGET_AVX2 void scaleRowAvx2(const float* x, const float* scale, float* out, int64_t n) {
  scaleRowBody(x, scale, out, n);
}
SPARQ_TARGET_AVX512 void scaleRowAvx512(const float* x, const float* scale, float* out, int64_t n) {
  scaleRowBody(x, scale, out, n);
}

template <typename T>
void axpyGeneric(T alpha, const T* x, T* y, int64_t n) {
  axpyBody(alpha, x, y, n);
}
template <typename T>
void unaryGeneric(UnaryOp op, const T* x, T* o, int64_t n, T a, T b) {
  unaryBody(op, x, o, n, a, b);
}
template <typename T>
SPARQ_TARGET_AVX2 void axpyAvx2(T alpha, const T* x, T* y, int64_t n) {
  axpyBody(alpha, x, y, n);
}
template <typename T>
SPARQ_TARGET_AVX512 void axpyAvx512(T alpha, const T* x, T* y, int64_t n) {
  axpyBody(alpha, x, y, n);
}
template <typename T>
SPARQ_TARGET_AVX2 void unaryAvx2(UnaryOp op, const T* x, T* o, int64_t n, T a, T b) {
  unaryBody(op, x, o, n, a, b);
}
template <typename T>
SPARQ_TARGET_AVX512 void unaryAvx512(UnaryOp op, const T* x, T* o, int64_t n, T a, T b) {
  unaryBody(op, x, o, n, a, b);
}

template <typename T>
void axpyTyped(double alpha, const TensorView& x, TensorView& y) {
  const auto fn = pickKernel(axpyGeneric<T>, axpyAvx2<T>, axpyAvx512<T>);
  const T* xs = x.as<const T>();
  T* ys = y.as<T>();
  const T a = static_cast<T>(alpha);
  parallelFor(x.numel(), kChunk, [&](int64_t b, int64_t e) { fn(a, xs + b, ys + b, e - b); });
}

template <typename T>
void unaryTyped(UnaryOp op, const TensorView& x, TensorView& out, double a, double b) {
  const auto fn = pickKernel(unaryGeneric<T>, unaryAvx2<T>, unaryAvx512<T>);
  const T* xs = x.as<const T>();
  T* os = out.as<T>();
  const T ta = static_cast<T>(a), tb = static_cast<T>(b);
  parallelFor(x.numel(), kChunk, [&](int64_t s, int64_t e) { fn(op, xs + s, os + s, e - s, ta, tb); });
}

// Fixed chunks summed in order: the result does not depend on the thread count.
template <typename T>
double dotTyped(const TensorView& a, const TensorView& b) {
  const auto fn = pickKernel(dotGeneric<T>, dotAvx2<T>, dotAvx512<T>);
  const int64_t n = a.numel();
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks));
  const T* as = a.as<const T>();
  const T* bs = b.as<const T>();
  parallelFor(chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      partial[c] = fn(as + c * kChunk, bs + c * kChunk, std::min(kChunk, n - c * kChunk));
    }
  });
  double sum = 0;
  for (double p : partial) sum += p;
  return sum;
}

}  // namespace

void scaleColumns(const TensorView& x, const TensorView& scale, TensorView& out) {
  const auto fn = pickKernel(scaleRowGeneric, scaleRowAvx2, scaleRowAvx512);
  const int64_t rows = x.shape[0], cols = x.shape[1];
  const float* xs = x.as<const float>();
  const float* s = scale.as<const float>();
  float* os = out.as<float>();
  parallelFor(rows, std::max<int64_t>(1, kChunk / std::max<int64_t>(1, cols)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) fn(xs + r * cols, s, os + r * cols, cols);
  });
}

double dot(const TensorView& a, const TensorView& b) {
  if (a.dtype == DType::F64) return dotTyped<double>(a, b);
  return dotTyped<float>(a, b);
}

void axpy(double alpha, const TensorView& x, TensorView& y) {
  if (x.dtype == DType::F64) return axpyTyped<double>(alpha, x, y);
  axpyTyped<float>(alpha, x, y);
}

void unary(UnaryOp op, const TensorView& x, TensorView& out, double a, double b) {
  SPARQ_CHECK(op != UnaryOp::Clamp || a <= b, ErrorCode::InvalidArgument,
          "clamp: min must not exceed max, got min " + std::to_string(a) + " > max " + std::to_string(b));
  if (x.dtype == DType::F64) return unaryTyped<double>(op, x, out, a, b);
  unaryTyped<float>(op, x, out, a, b);
}

}  // namespace sparq::cpu

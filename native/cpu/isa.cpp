#include "isa.h"

#include <atomic>
#include <cstdlib>

#include "core/error.h"

namespace sparq::cpu {

namespace {

Isa detect() {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  // AVX-512 kernels use F, BW and VL; AVX2 kernels use FMA and F16C alongside.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
    return Isa::Avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
    return Isa::Avx2;
  }
#endif
  return Isa::Scalar;
}

Isa initialIsa() {
  Isa isa = detect();
  if (const char* env = std::getenv("SPARQ_ISA")) {
    try {
      const Isa wanted = parseIsa(env);
      if (static_cast<int>(wanted) < static_cast<int>(isa)) isa = wanted;
    } catch (const Error&) {
      // An unknown SPARQ_ISA value leaves the detected level in place.
    }
  }
  return isa;
}

std::atomic<int>& activeLevel() {
  static std::atomic<int> level{static_cast<int>(initialIsa())};
  return level;
}

}  // namespace

const char* isaName(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "scalar";
}

Isa detectedIsa() {
  static const Isa detected = detect();
  return detected;
}

Isa activeIsa() { return static_cast<Isa>(activeLevel().load(std::memory_order_relaxed)); }

void setIsa(Isa isa) {
  SPARQ_CHECK(static_cast<int>(isa) <= static_cast<int>(detectedIsa()), ErrorCode::InvalidArgument,
          std::string("this CPU cannot run ") + isaName(isa) + " kernels (best available: " + isaName(detectedIsa()) + ")");
  activeLevel().store(static_cast<int>(isa), std::memory_order_relaxed);
}

Isa parseIsa(const std::string& name) {
  if (name == "scalar") return Isa::Scalar;
  if (name == "avx2") return Isa::Avx2;
  if (name == "avx512") return Isa::Avx512;
  fail(ErrorCode::InvalidArgument, "unknown instruction set '" + name + "' (expected scalar, avx2 or avx512)");
}

}  // namespace sparq::cpu

// Helpers for writing one kernel body and compiling it for several instruction sets. A body written as
// an always-inline template is instantiated inside functions carrying a target attribute, so the
// compiler vectorizes each copy for that target; the plain copy is the scalar reference.
#pragma once

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define SPARQ_X86 1
#define SPARQ_TARGET_AVX2 __attribute__((target("avx2,fma,f16c,bmi,bmi2,popcnt")))
#define SPARQ_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,bmi,bmi2,popcnt")))
#else
#define SPARQ_X86 0
// Elsewhere the "vector" copies of a template-bodied kernel are plain copies of the baseline.
#define SPARQ_TARGET_AVX2
#define SPARQ_TARGET_AVX512
#endif

#define SPARQ_INLINE inline __attribute__((always_inline))

#include "isa.h"

namespace sparq::cpu {

// The copy of a kernel for the active instruction set.
template <typename Fn>
Fn pickKernel(Fn generic, Fn avx2, Fn avx512) {
  switch (activeIsa()) {
    case Isa::Avx512: return avx512;
    case Isa::Avx2: return avx2;
    case Isa::Scalar: break;
  }
  return generic;
}

}  // namespace sparq::cpu

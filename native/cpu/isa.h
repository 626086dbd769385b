// Which vector instruction set the CPU kernels use. Detected once at load; tests and benchmarks can
// force a lower level to exercise every code path on one machine.
#pragma once
#include <string>

namespace sparq::cpu {

enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

const char* isaName(Isa isa);
// The best level this CPU (and this build) supports.
Isa detectedIsa();
// The level kernels dispatch on now: detectedIsa() unless lowered by setIsa or SPARQ_ISA.
Isa activeIsa();
// Throws InvalidArgument if the CPU cannot run `isa`.
void setIsa(Isa isa);
Isa parseIsa(const std::string& name);

}  // namespace sparq::cpu

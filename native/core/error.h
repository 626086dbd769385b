// Typed errors. Every failure inside sparq's native code is a sparq::Error with a code; the N-API layer
// turns it into a JavaScript error carrying the same code (see lib/errors.ts). No C++ exception ever
// crosses into JavaScript untranslated.
#pragma once
#include <stdexcept>
#include <string>

namespace sparq {

enum class ErrorCode {
  InvalidArgument,
  ShapeMismatch,
  DTypeMismatch,
  DeviceMismatch,
  NotPositiveDefinite,
  AllocationFailed,
  Aborted,
  BackendUnavailable,
  Internal,
  InvalidFile,  // data that contradicts its own format (corrupt packed tensors)
};

inline const char* errorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::InvalidArgument: return "SPARQ_INVALID_ARGUMENT";
    case ErrorCode::ShapeMismatch: return "SPARQ_SHAPE_MISMATCH";
    case ErrorCode::DTypeMismatch: return "SPARQ_DTYPE_MISMATCH";
    case ErrorCode::DeviceMismatch: return "SPARQ_DEVICE_MISMATCH";
    case ErrorCode::NotPositiveDefinite: return "SPARQ_NOT_POSITIVE_DEFINITE";
    case ErrorCode::AllocationFailed: return "SPARQ_ALLOCATION_FAILED";
    case ErrorCode::Aborted: return "ABORT_ERR";
    case ErrorCode::BackendUnavailable: return "SPARQ_BACKEND_UNAVAILABLE";
    case ErrorCode::Internal: return "SPARQ_INTERNAL";
    case ErrorCode::InvalidFile: return "SPARQ_INVALID_FILE";
  }
  return "SPARQ_INTERNAL";
}

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

[[noreturn]] inline void fail(ErrorCode code, const std::string& message) { throw Error(code, message); }

// Checks a condition; the message expression is evaluated only when the check fails, so checks on hot
// paths (every op's arguments) cost a comparison, not a string.
#define SPARQ_CHECK(condition, code, message) \
  do {                                         \
    if (!(condition)) ::sparq::fail(code, message); \
  } while (0)

}  // namespace sparq

// The damping ladder every backend's Cholesky climbs: rung 1 adds λ = damp · scale to the diagonal, each
// further rung ten times more (from 1e-6 · scale when damp is 0), with scale = mean(|diag A|) (1 when that
// is 0 or not finite), for at most maxAttempts rungs. Backends do the factorizations; the policy, the
// report and the error past the top live here, so they cannot drift apart.
#pragma once
#include <cmath>
#include <cstdio>
#include <string>

#include "op_types.h"

namespace sparq {

class DampingLadder {
 public:
  DampingLadder(const CholeskyOptions& options, double sumAbsDiagonal, int64_t n)
      : options_(options), n_(n), relative_(options.damp) {
    scale_ = n > 0 ? sumAbsDiagonal / static_cast<double>(n) : 1;
    if (!(scale_ > 0) || !std::isfinite(scale_)) scale_ = 1;
  }

  // Moves to the next rung; false once all rungs are spent.
  bool next() {
    if (attempts_ == options_.maxAttempts) return false;
    if (attempts_ > 0) relative_ = relative_ == 0 ? 1e-6 : relative_ * 10;
    ++attempts_;
    return true;
  }

  // λ to add to the diagonal on this rung.
  double lambda() const { return relative_ * scale_; }

  // The report for a factorization that succeeded on this rung.
  CholeskyReport report() const { return {relative_, lambda(), attempts_}; }

  [[noreturn]] void exhausted(int failedPivot) const {
    fail(ErrorCode::NotPositiveDefinite,
         "cholesky: the " + std::to_string(n_) + "x" + std::to_string(n_) +
             " matrix is not positive definite even with damping " + format(relative_) + " x mean(diag) = " +
             format(lambda()) + " after " + std::to_string(attempts_) + " attempts (the leading minor of order " +
             std::to_string(failedPivot) + " failed)");
  }

 private:
  static std::string format(double v) {
    char buffer[32];
    snprintf(buffer, sizeof buffer, "%.3g", v);
    return buffer;
  }

  CholeskyOptions options_;
  int64_t n_;
  double scale_ = 1;
  double relative_;
  int attempts_ = 0;
};

}  // namespace sparq

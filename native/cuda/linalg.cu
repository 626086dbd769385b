// Small matrix helpers around cuSOLVER's Cholesky: finiteness check, diagonal damping, and moving
// triangles, all on row-major n×n matrices.
#include "common.cuh"
#include "kernels.h"

namespace sparq::cuda {

namespace {

template <typename T>
__global__ void nonFiniteKernel(const T* a, int64_t count, int64_t* firstBad) {
  SPARQ_GRID_STRIDE(i, count) {
    if (!isfinite(a[i])) recordFirst(firstBad, i);
  }
}

template <typename T>
__global__ void diagonalKernel(T* a, int64_t n, T lambda) {
  SPARQ_GRID_STRIDE(i, n) { a[i * n + i] += lambda; }
}

// One thread per (i, j) with j > i: upper (i, j) takes lower (j, i).
template <typename T>
__global__ void mirrorKernel(T* a, int64_t n) {
  SPARQ_GRID_STRIDE(index, n * n) {
    const int64_t i = index / n, j = index % n;
    if (j > i) a[index] = a[j * n + i];
  }
}

template <typename T>
__global__ void zeroUpperKernel(T* a, int64_t n) {
  SPARQ_GRID_STRIDE(index, n * n) {
    if (index % n > index / n) a[index] = T(0);
  }
}

template <typename T>
__global__ void moveLowerToUpperKernel(T* a, int64_t n) {
  // Each thread owns one pair (i, j), j > i, so no element is read after being overwritten.
  SPARQ_GRID_STRIDE(index, n * n) {
    const int64_t i = index / n, j = index % n;
    if (j > i) {
      a[index] = a[j * n + i];
      a[j * n + i] = T(0);
    }
  }
}

}  // namespace

void findNonFinite(const void* a, int64_t count, DType dtype, int64_t* firstBad, cudaStream_t stream) {
  if (count == 0) return;
  if (dtype == DType::F64) nonFiniteKernel<<<gridFor(count), kThreads, 0, stream>>>(static_cast<const double*>(a), count, firstBad);
  else nonFiniteKernel<<<gridFor(count), kThreads, 0, stream>>>(static_cast<const float*>(a), count, firstBad);
  checkLaunch("cholesky (finiteness check)");
}

void addToDiagonal(void* a, int64_t n, DType dtype, double lambda, cudaStream_t stream) {
  if (n == 0 || lambda == 0) return;
  if (dtype == DType::F64) diagonalKernel<<<gridFor(n), kThreads, 0, stream>>>(static_cast<double*>(a), n, lambda);
  else diagonalKernel<<<gridFor(n), kThreads, 0, stream>>>(static_cast<float*>(a), n, static_cast<float>(lambda));
  checkLaunch("cholesky (damping)");
}

void mirrorLower(void* a, int64_t n, DType dtype, cudaStream_t stream) {
  if (n == 0) return;
  if (dtype == DType::F64) mirrorKernel<<<gridFor(n * n), kThreads, 0, stream>>>(static_cast<double*>(a), n);
  else mirrorKernel<<<gridFor(n * n), kThreads, 0, stream>>>(static_cast<float*>(a), n);
  checkLaunch("mirror lower triangle");
}

void finishFactor(void* a, int64_t n, DType dtype, bool upper, cudaStream_t stream) {
  if (n == 0) return;
  if (dtype == DType::F64) {
    if (upper) moveLowerToUpperKernel<<<gridFor(n * n), kThreads, 0, stream>>>(static_cast<double*>(a), n);
    else zeroUpperKernel<<<gridFor(n * n), kThreads, 0, stream>>>(static_cast<double*>(a), n);
  } else {
    if (upper) moveLowerToUpperKernel<<<gridFor(n * n), kThreads, 0, stream>>>(static_cast<float*>(a), n);
    else zeroUpperKernel<<<gridFor(n * n), kThreads, 0, stream>>>(static_cast<float*>(a), n);
  }
  checkLaunch("cholesky (finish factor)");
}

}  // namespace sparq::cuda

// Small matrix helpers around cuBLAS and cuSOLVER, all on row-major n×n matrices (f32 or f64): the
// finiteness check and diagonal damping of the Cholesky ladder, moving a triangle across the diagonal,
// and the beta scaling that gemm and syrk need when their inner dimension is empty.
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

// beta·c, computed in double as the CPU does; beta = 0 overwrites, since c may hold NaN.
template <typename T>
__global__ void scaleKernel(T* c, int64_t count, double beta) {
  SPARQ_GRID_STRIDE(i, count) { c[i] = beta == 0 ? T(0) : static_cast<T>(beta * static_cast<double>(c[i])); }
}

template <typename T>
__global__ void scaleLowerKernel(T* c, int64_t n, double beta) {
  SPARQ_GRID_STRIDE(index, n * n) {
    if (index % n <= index / n) c[index] = beta == 0 ? T(0) : static_cast<T>(beta * static_cast<double>(c[index]));
  }
}

template <typename T>
__global__ void zeroUpperKernel(T* a, int64_t n) {
  SPARQ_GRID_STRIDE(index, n * n) {
    if (index % n > index / n) a[index] = T(0);
  }
}

// Moving the lower triangle onto the upper one, one 32×32 tile at a time through shared memory, so that
// both the reads (along rows of the lower tile) and the writes (along rows of the mirrored upper tile)
// are coalesced. Each block owns a tile at or below the diagonal and its mirror image, so blocks never
// touch the same element. Mirror leaves the lower triangle in place (a symmetric matrix); Transpose
// zeroes it afterwards (U = Lᵀ).
enum class TriangleMove { Mirror, Transpose };

constexpr int kTile = 32;
constexpr int kTileRows = 8;  // a 32×8 block moves a 32×32 tile, four rows per thread

template <typename T, TriangleMove Move>
__global__ void __launch_bounds__(kTile * kTileRows) triangleKernel(T* a, int64_t n, int64_t tiles) {
  __shared__ T tile[kTile][kTile + 1];  // the padding column spreads a tile column over all banks
  const int tx = threadIdx.x;
  for (int64_t tileRow = blockIdx.y; tileRow < tiles; tileRow += gridDim.y) {
    for (int64_t tileCol = blockIdx.x; tileCol <= tileRow; tileCol += gridDim.x) {
      const int64_t row0 = tileRow * kTile, col0 = tileCol * kTile;
      for (int r = threadIdx.y; r < kTile; r += kTileRows) {
        const int64_t i = row0 + r, j = col0 + tx;
        if (i < n && j < n) tile[r][tx] = a[i * n + j];
      }
      __syncthreads();
      // Element (i, j) above the diagonal takes (j, i) = tile[j - row0][i - col0].
      for (int r = threadIdx.y; r < kTile; r += kTileRows) {
        const int64_t i = col0 + r, j = row0 + tx;
        if (i < n && j < n && j > i) a[i * n + j] = tile[tx][r];
      }
      if (Move == TriangleMove::Transpose) {
        for (int r = threadIdx.y; r < kTile; r += kTileRows) {
          const int64_t i = row0 + r, j = col0 + tx;
          if (i < n && j < i) a[i * n + j] = T(0);
        }
      }
      __syncthreads();  // the tile buffer is refilled by the next iteration
    }
  }
}

template <typename T, TriangleMove Move>
void launchTriangle(void* a, int64_t n, cudaStream_t stream) {
  const int64_t tiles = (n + kTile - 1) / kTile;
  const dim3 grid(static_cast<unsigned>(tiles < 65535 ? tiles : 65535), static_cast<unsigned>(tiles < 65535 ? tiles : 65535));
  triangleKernel<T, Move><<<grid, dim3(kTile, kTileRows), 0, stream>>>(static_cast<T*>(a), n, tiles);
}

}  // namespace

void findNonFinite(const void* a, int64_t count, DType dtype, int64_t* firstBad, cudaStream_t stream) {
  if (count == 0) return;
  if (dtype == DType::F64) {
    nonFiniteKernel<<<gridFor(count), kThreads, 0, stream>>>(static_cast<const double*>(a), count, firstBad);
  } else {
    nonFiniteKernel<<<gridFor(count), kThreads, 0, stream>>>(static_cast<const float*>(a), count, firstBad);
  }
  checkLaunch("cholesky (finiteness check)");
}

void addToDiagonal(void* a, int64_t n, DType dtype, double lambda, cudaStream_t stream) {
  if (n == 0 || lambda == 0) return;
  if (dtype == DType::F64) {
    diagonalKernel<<<gridFor(n), kThreads, 0, stream>>>(static_cast<double*>(a), n, lambda);
  } else {
    diagonalKernel<<<gridFor(n), kThreads, 0, stream>>>(static_cast<float*>(a), n, static_cast<float>(lambda));
  }
  checkLaunch("cholesky (damping)");
}

void scaleMatrix(void* c, int64_t count, DType dtype, double beta, cudaStream_t stream) {
  if (count == 0 || beta == 1) return;
  if (dtype == DType::F64) scaleKernel<<<gridFor(count), kThreads, 0, stream>>>(static_cast<double*>(c), count, beta);
  else scaleKernel<<<gridFor(count), kThreads, 0, stream>>>(static_cast<float*>(c), count, beta);
  checkLaunch("scale by beta");
}

void scaleLower(void* c, int64_t n, DType dtype, double beta, cudaStream_t stream) {
  if (n == 0 || beta == 1) return;
  if (dtype == DType::F64) scaleLowerKernel<<<gridFor(n * n), kThreads, 0, stream>>>(static_cast<double*>(c), n, beta);
  else scaleLowerKernel<<<gridFor(n * n), kThreads, 0, stream>>>(static_cast<float*>(c), n, beta);
  checkLaunch("scale lower triangle by beta");
}

void mirrorLower(void* a, int64_t n, DType dtype, cudaStream_t stream) {
  if (n == 0) return;
  if (dtype == DType::F64) launchTriangle<double, TriangleMove::Mirror>(a, n, stream);
  else launchTriangle<float, TriangleMove::Mirror>(a, n, stream);
  checkLaunch("mirror lower triangle");
}

void finishFactor(void* a, int64_t n, DType dtype, bool upper, cudaStream_t stream) {
  if (n == 0) return;
  if (dtype == DType::F64) {
    if (upper) launchTriangle<double, TriangleMove::Transpose>(a, n, stream);
    else zeroUpperKernel<<<gridFor(n * n), kThreads, 0, stream>>>(static_cast<double*>(a), n);
  } else {
    if (upper) launchTriangle<float, TriangleMove::Transpose>(a, n, stream);
    else zeroUpperKernel<<<gridFor(n * n), kThreads, 0, stream>>>(static_cast<float*>(a), n);
  }
  checkLaunch("cholesky (finish factor)");
}

}  // namespace sparq::cuda

// A non-owning view of a dense, row-major tensor: pointer, dtype, shape, device. Whoever created the
// view (JavaScript memory pinned by the N-API layer, or a device allocation) keeps the bytes alive.
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include "dtype.h"
#include "error.h"

namespace sparq {

enum class Device : int32_t { CPU = 0, CUDA = 1 };

inline const char* deviceName(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

constexpr int kMaxDims = 8;

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::F32;
  Device device = Device::CPU;
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{};

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtypeSize(dtype); }
  // For matrices: the last dimension is the row length, everything before it is rows.
  int64_t cols() const { return ndim == 0 ? 1 : shape[ndim - 1]; }
  int64_t rows() const { return ndim == 0 ? 1 : numel() / (shape[ndim - 1] == 0 ? 1 : shape[ndim - 1]); }

  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }

  std::string shapeString() const {
    std::string s = "[";
    for (int i = 0; i < ndim; ++i) {
      if (i) s += ", ";
      s += std::to_string(shape[i]);
    }
    return s + "]";
  }
};

inline TensorView makeView(void* data, DType dtype, Device device, std::initializer_list<int64_t> dims) {
  TensorView v;
  v.data = data;
  v.dtype = dtype;
  v.device = device;
  for (int64_t d : dims) v.shape[v.ndim++] = d;
  return v;
}

}  // namespace sparq

// Reading JavaScript arguments into plain C++ values. Tensor bytes cross the boundary, so every tensor is
// re-checked here (dtype code, shape, exact byte length, alignment, device) even though lib/ validated it.
// A tensor argument is three consecutive JavaScript values: storage (a TypedArray for CPU tensors, a
// device buffer for CUDA ones), dtype code, and shape (an array of integers).
#pragma once
#include <napi.h>
#include <v8.h>

#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/pool.h"

namespace sparq::napi {

// Device memory owned by a JavaScript object; released by release() or when collected.
struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  Device device = Device::CUDA;
  ~DeviceBuffer();
};

// A JavaScript Error carrying sparq's error code.
Napi::Error makeError(Napi::Env env, ErrorCode code, const std::string& message);

class ArgReader {
 public:
  // retainStorage: also hold each CPU tensor's backing store (asynchronous jobs; a synchronous call keeps the
  // JavaScript thread, so nothing can detach a buffer under it).
  explicit ArgReader(const Napi::CallbackInfo& info, bool retainStorage = false) : info_(info), retainStorage_(retainStorage) {}

  TensorView tensor(const char* name);
  double number(const char* name);
  int64_t integer(const char* name);
  bool boolean(const char* name);
  std::string string(const char* name);
  std::shared_ptr<CancelToken> cancelToken();
  size_t remaining() const { return info_.Length() > index_ ? info_.Length() - index_ : 0; }

  // The JavaScript values that own tensor memory; an asynchronous job holds references to them.
  const std::vector<Napi::Value>& pinned() const { return pinned_; }
  // The backing stores of the CPU tensors' ArrayBuffers. A reference to the JavaScript value does not
  // keep its memory alive: transferring the ArrayBuffer (postMessage, structuredClone) detaches it and
  // hands the memory to another owner that may free it mid-job. Holding the backing store does.
  const std::vector<std::shared_ptr<v8::BackingStore>>& backingStores() const { return backingStores_; }

 private:
  Napi::Value next(const char* name);
  [[noreturn]] void invalid(const char* name, const std::string& expected);

  const Napi::CallbackInfo& info_;
  size_t index_ = 0;
  std::vector<Napi::Value> pinned_;
  std::vector<std::shared_ptr<v8::BackingStore>> backingStores_;
  bool retainStorage_ = false;
};

// True when a pinned storage value is a TypedArray whose ArrayBuffer has been detached.
bool isDetachedStorage(Napi::Env env, Napi::Value storage);

Napi::Value wrapDeviceBuffer(Napi::Env env, std::unique_ptr<DeviceBuffer> buffer);
DeviceBuffer* unwrapDeviceBuffer(Napi::Value value);

}  // namespace sparq::napi

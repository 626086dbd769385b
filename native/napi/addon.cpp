// Module registration: the ops, plus backend information, threads, kernel variants, cancel tokens and
// device memory. Compiled into both addons; each links the backend that defines addonBackend().
#include <napi.h>

#include <mutex>

#include "args.h"
#include "ops.h"

namespace sparq::napi {

namespace {

// Runs fn, turning sparq errors into JavaScript errors with codes.
template <typename Fn>
auto guarded(Napi::Env env, Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error& e) {
    throw makeError(env, e.code(), e.what());
  } catch (const std::bad_alloc&) {
    throw makeError(env, ErrorCode::AllocationFailed, "out of memory");
  }
}

Napi::Value info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Backend& backend = addonBackend();
    Napi::Object o = Napi::Object::New(env);
    o.Set("backend", backend.name());
    o.Set("description", backend.description());
    o.Set("kernelVariant", backend.kernelVariant());
    const auto variants = backend.kernelVariants();
    Napi::Array list = Napi::Array::New(env, variants.size());
    for (size_t i = 0; i < variants.size(); ++i) list.Set(static_cast<uint32_t>(i), variants[i]);
    o.Set("kernelVariants", list);
    const auto ops = backend.supportedOps();
    Napi::Array opList = Napi::Array::New(env, ops.size());
    for (size_t i = 0; i < ops.size(); ++i) opList.Set(static_cast<uint32_t>(i), ops[i]);
    o.Set("ops", opList);
    o.Set("threads", ThreadPool::instance().threads());
    return o;
  });
}

Napi::Value setThreads(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ArgReader r(info);
    const int threads = static_cast<int>(r.integer("threads"));
    // Wait for running asynchronous jobs: OpenBLAS must not be resized under one.
    std::lock_guard<std::mutex> lock(computeMutex());
    ThreadPool::instance().setThreads(threads);
    return info.Env().Undefined();
  });
}

Napi::Value setKernelVariant(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ArgReader r(info);
    addonBackend().setKernelVariant(r.string("variant"));
    return info.Env().Undefined();
  });
}

Napi::Value newCancelToken(const Napi::CallbackInfo& info) {
  auto* token = new std::shared_ptr<CancelToken>(std::make_shared<CancelToken>());
  return Napi::External<std::shared_ptr<CancelToken>>::New(
      info.Env(), token, [](Napi::Env, std::shared_ptr<CancelToken>* t) { delete t; });
}

Napi::Value cancel(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ArgReader r(info);
    r.cancelToken()->cancel();
    return info.Env().Undefined();
  });
}

// Device memory (CUDA addon): allocate(bytes) -> buffer, release(buffer),
// copyToDevice(buffer, typedArray), copyToHost(buffer, typedArray).
Napi::Value allocate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    ArgReader r(info);
    const int64_t bytes = r.integer("bytes");
    SPARQ_CHECK(bytes >= 0, ErrorCode::InvalidArgument, "allocate: bytes must be >= 0");
    Backend& backend = addonBackend();
    SPARQ_CHECK(backend.device() != Device::CPU, ErrorCode::InvalidArgument,
            "allocate: CPU tensors live in JavaScript memory; allocate is for device backends");
    auto buffer = std::make_unique<DeviceBuffer>();
    buffer->device = backend.device();
    buffer->bytes = static_cast<size_t>(bytes);
    buffer->ptr = bytes > 0 ? backend.allocate(buffer->bytes) : nullptr;
    return wrapDeviceBuffer(env, std::move(buffer));
  });
}

DeviceBuffer& bufferArg(const Napi::CallbackInfo& info, size_t index) {
  DeviceBuffer* buffer = index < info.Length() ? unwrapDeviceBuffer(info[index]) : nullptr;
  SPARQ_CHECK(buffer != nullptr, ErrorCode::InvalidArgument, "argument 'buffer': expected a device buffer");
  return *buffer;
}

Napi::Value release(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    DeviceBuffer& buffer = bufferArg(info, 0);
    if (buffer.ptr) addonBackend().release(buffer.ptr);
    buffer.ptr = nullptr;
    buffer.bytes = 0;
    return info.Env().Undefined();
  });
}

Napi::Value copy(const Napi::CallbackInfo& info, bool toDevice) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    DeviceBuffer& buffer = bufferArg(info, 0);
    SPARQ_CHECK(info.Length() > 1 && info[1].IsTypedArray(), ErrorCode::InvalidArgument,
            "argument 'host': expected a TypedArray");
    Napi::TypedArray host = info[1].As<Napi::TypedArray>();
    SPARQ_CHECK(host.ByteLength() == buffer.bytes, ErrorCode::ShapeMismatch,
            "copy: the device buffer has " + std::to_string(buffer.bytes) + " bytes, the host array " +
                std::to_string(host.ByteLength()));
    uint8_t* hostData = static_cast<uint8_t*>(host.ArrayBuffer().Data()) + host.ByteOffset();
    if (buffer.bytes == 0) return info.Env().Undefined();
    if (toDevice) addonBackend().copyToDevice(buffer.ptr, hostData, buffer.bytes);
    else addonBackend().copyToHost(hostData, buffer.ptr, buffer.bytes);
    return info.Env().Undefined();
  });
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  exportOps(env, exports);
  exports.Set("info", Napi::Function::New(env, info, "info"));
  exports.Set("setThreads", Napi::Function::New(env, setThreads, "setThreads"));
  exports.Set("setKernelVariant", Napi::Function::New(env, setKernelVariant, "setKernelVariant"));
  exports.Set("newCancelToken", Napi::Function::New(env, newCancelToken, "newCancelToken"));
  exports.Set("cancel", Napi::Function::New(env, cancel, "cancel"));
  exports.Set("allocate", Napi::Function::New(env, allocate, "allocate"));
  exports.Set("release", Napi::Function::New(env, release, "release"));
  exports.Set("copyToDevice", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return copy(i, true); }));
  exports.Set("copyToHost", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return copy(i, false); }));
  return exports;
}

}  // namespace

}  // namespace sparq::napi

Napi::Object SparqInit(Napi::Env env, Napi::Object exports) { return sparq::napi::init(env, exports); }

NODE_API_MODULE(NODE_GYP_MODULE_NAME, SparqInit)

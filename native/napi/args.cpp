#include "args.h"

#include <cmath>
#include <cstring>

namespace sparq::napi {

namespace {

// Distinguishes our device buffers from any other external value.
const napi_type_tag kDeviceBufferTag = {0x7370617271646576ULL, 0x6963656275666672ULL};

size_t typedArrayElementSize(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array: return 1;
    case napi_int16_array:
    case napi_uint16_array: return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array: return 4;
    case napi_float64_array:
    case napi_bigint64_array:
    case napi_biguint64_array: return 8;
  }
  return 1;
}

// N-API has no call for an ArrayBuffer's backing store. In Node a napi_value is a v8::Local<v8::Value>
// (node's own js_native_api_v8.h converts them with this same copy), so the V8 object is reachable.
v8::Local<v8::Value> toV8(napi_value value) {
  v8::Local<v8::Value> local;
  static_assert(sizeof(local) == sizeof(value), "napi_value and v8::Local differ in size");
  std::memcpy(static_cast<void*>(&local), &value, sizeof(value));
  return local;
}

}  // namespace

bool isDetachedStorage(Napi::Env env, Napi::Value storage) {
  if (!storage.IsTypedArray()) return false;
  napi_value arrayBuffer;
  if (napi_get_typedarray_info(env, storage, nullptr, nullptr, nullptr, &arrayBuffer, nullptr) != napi_ok) return false;
  bool detached = false;
  return napi_is_detached_arraybuffer(env, arrayBuffer, &detached) == napi_ok && detached;
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr) {
    try {
      addonBackend().release(ptr);
    } catch (...) {
      // A finalizer must not throw; the memory is lost with the failing device.
    }
  }
}

Napi::Error makeError(Napi::Env env, ErrorCode code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, errorCodeName(code)));
  if (code == ErrorCode::Aborted) error.Set("name", Napi::String::New(env, "AbortError"));
  return error;
}

void ArgReader::invalid(const char* name, const std::string& expected) {
  fail(ErrorCode::InvalidArgument, std::string("argument '") + name + "': expected " + expected);
}

Napi::Value ArgReader::next(const char* name) {
  if (index_ >= info_.Length()) invalid(name, "a value, but too few arguments were given");
  return info_[index_++];
}

double ArgReader::number(const char* name) {
  Napi::Value v = next(name);
  if (!v.IsNumber()) invalid(name, "a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t ArgReader::integer(const char* name) {
  const double d = number(name);
  if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9007199254740991.0) invalid(name, "an integer");
  return static_cast<int64_t>(d);
}

bool ArgReader::boolean(const char* name) {
  Napi::Value v = next(name);
  if (!v.IsBoolean()) invalid(name, "a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string ArgReader::string(const char* name) {
  Napi::Value v = next(name);
  if (!v.IsString()) invalid(name, "a string");
  return v.As<Napi::String>().Utf8Value();
}

std::shared_ptr<CancelToken> ArgReader::cancelToken() {
  Napi::Value v = next("cancelToken");
  if (v.IsUndefined() || v.IsNull()) return std::make_shared<CancelToken>();
  if (!v.IsExternal()) invalid("cancelToken", "a token from newCancelToken()");
  return *v.As<Napi::External<std::shared_ptr<CancelToken>>>().Data();
}

TensorView ArgReader::tensor(const char* name) {
  Napi::Value storage = next(name);
  const int64_t dtypeCode = integer(name);
  Napi::Value shapeValue = next(name);
  SPARQ_CHECK(isValidDType(static_cast<int32_t>(dtypeCode)), ErrorCode::InvalidArgument,
          std::string("tensor '") + name + "': unknown dtype code " + std::to_string(dtypeCode));
  if (!shapeValue.IsArray()) invalid(name, "a shape array after the dtype");

  TensorView view;
  view.dtype = static_cast<DType>(dtypeCode);
  Napi::Array shape = shapeValue.As<Napi::Array>();
  SPARQ_CHECK(shape.Length() <= static_cast<uint32_t>(kMaxDims), ErrorCode::InvalidArgument,
          std::string("tensor '") + name + "': at most " + std::to_string(kMaxDims) + " dimensions are supported");
  view.ndim = static_cast<int>(shape.Length());
  for (uint32_t i = 0; i < shape.Length(); ++i) {
    Napi::Value d = shape.Get(i);
    const double dim = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1;
    SPARQ_CHECK(dim >= 0 && dim == std::floor(dim) && dim <= 9007199254740991.0, ErrorCode::InvalidArgument,
            std::string("tensor '") + name + "': shape entries must be non-negative integers");
    view.shape[i] = static_cast<int64_t>(dim);
  }

  size_t byteLength = 0;
  if (storage.IsTypedArray()) {
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    napi_value arrayBuffer;
    size_t byteOffset = 0;
    NAPI_THROW_IF_FAILED(info_.Env(), napi_get_typedarray_info(info_.Env(), storage, &type, &length, &data, &arrayBuffer,
                                                               &byteOffset),
                         view);
    view.data = data;
    view.device = Device::CPU;
    byteLength = length * typedArrayElementSize(type);
    if (retainStorage_) backingStores_.push_back(toV8(storage).As<v8::TypedArray>()->Buffer()->GetBackingStore());
  } else if (DeviceBuffer* buffer = unwrapDeviceBuffer(storage)) {
    SPARQ_CHECK(buffer->ptr != nullptr || buffer->bytes == 0, ErrorCode::InvalidArgument,
            std::string("tensor '") + name + "': its device buffer was already released");
    view.data = buffer->ptr;
    view.device = buffer->device;
    byteLength = buffer->bytes;
  } else {
    invalid(name, "a TypedArray or a device buffer as tensor storage");
  }
  SPARQ_CHECK(view.device == addonBackend().device(), ErrorCode::DeviceMismatch,
          std::string("tensor '") + name + "' is on " + deviceName(view.device) + ", but this is the " +
              addonBackend().name() + " backend");
  SPARQ_CHECK(byteLength == view.bytes(), ErrorCode::ShapeMismatch,
          std::string("tensor '") + name + "': " + dtypeName(view.dtype) + view.shapeString() + " needs " +
              std::to_string(view.bytes()) + " bytes, its storage has " + std::to_string(byteLength));
  SPARQ_CHECK(reinterpret_cast<uintptr_t>(view.data) % dtypeSize(view.dtype) == 0, ErrorCode::InvalidArgument,
          std::string("tensor '") + name + "': storage is not aligned to its element size");
  pinned_.push_back(storage);
  return view;
}

Napi::Value wrapDeviceBuffer(Napi::Env env, std::unique_ptr<DeviceBuffer> buffer) {
  auto external = Napi::External<DeviceBuffer>::New(env, buffer.release(), [](Napi::Env, DeviceBuffer* b) { delete b; });
  NAPI_THROW_IF_FAILED(env, napi_type_tag_object(env, external, &kDeviceBufferTag), Napi::Value());
  return external;
}

DeviceBuffer* unwrapDeviceBuffer(Napi::Value value) {
  if (!value.IsExternal()) return nullptr;
  bool tagged = false;
  if (napi_check_object_type_tag(value.Env(), value, &kDeviceBufferTag, &tagged) != napi_ok || !tagged) return nullptr;
  return value.As<Napi::External<DeviceBuffer>>().Data();
}

}  // namespace sparq::napi

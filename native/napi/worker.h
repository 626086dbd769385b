// Runs one op either on the JavaScript thread (sync) or on a libuv worker thread (async, returning a
// Promise). An op is a Job: parse() reads and checks arguments on the JavaScript thread, run() does the
// work touching only the job's own fields, result() converts the outcome back. Asynchronous jobs take
// turns on the cores (computeMutex), keep their tensors' JavaScript owners alive, and honour a cancel
// token. No C++ exception escapes: each becomes a JavaScript error with a code.
#pragma once
#include <napi.h>

#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "args.h"

namespace sparq::napi {

template <typename Job>
Napi::Value runSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Job job;
  try {
    ArgReader reader(info);
    job.parse(reader);
    job.run(addonBackend());
  } catch (const Error& e) {
    throw makeError(env, e.code(), e.what());
  } catch (const std::bad_alloc&) {
    throw makeError(env, ErrorCode::AllocationFailed, std::string(Job::kName) + ": out of memory");
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw makeError(env, ErrorCode::Internal, std::string(Job::kName) + ": " + e.what());
  }
  return job.result(env);
}

template <typename Job>
class JobWorker final : public Napi::AsyncWorker {
 public:
  JobWorker(Napi::Env env, Job job, const ArgReader& reader, std::shared_ptr<CancelToken> token)
      : Napi::AsyncWorker(env, Job::kName),
        job_(std::move(job)),
        token_(std::move(token)),
        deferred_(env),
        backingStores_(reader.backingStores()) {
    for (const Napi::Value& value : reader.pinned()) pins_.push_back(Napi::Persistent(value));
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      std::lock_guard<std::mutex> lock(computeMutex());
      CancelScope scope(token_.get());
      throwIfCancelled();
      job_.run(addonBackend());
    } catch (const Error& e) {
      fail(e.code(), e.what());
    } catch (const std::bad_alloc&) {
      fail(ErrorCode::AllocationFailed, std::string(Job::kName) + ": out of memory");
    } catch (const std::exception& e) {
      fail(ErrorCode::Internal, std::string(Job::kName) + ": " + e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (const char* lost = detachedWhileRunning()) {
      deferred_.Reject(makeError(env, ErrorCode::InvalidArgument,
                                 std::string(Job::kName) + ": a tensor's ArrayBuffer was detached (transferred) while the op ran; " +
                                     lost)
                           .Value());
      return;
    }
    if (token_->cancelled()) {
      // Aborted after the work finished: the caller asked not to be given the result.
      deferred_.Reject(makeError(env, ErrorCode::Aborted, "The operation was aborted").Value());
      return;
    }
    try {
      deferred_.Resolve(job_.result(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error&) override { deferred_.Reject(makeError(Env(), code_, message_).Value()); }

 private:
  // The backing stores kept the memory valid, so the op ran safely; but a detached input or output means
  // the caller no longer holds what the op read or wrote.
  const char* detachedWhileRunning() {
    for (auto& pin : pins_) {
      if (isDetachedStorage(Env(), pin.Value())) return "its result is lost; keep tensors' buffers in place until the op settles";
    }
    return nullptr;
  }

  void fail(ErrorCode code, const std::string& message) {
    code_ = code;
    message_ = message;
    SetError(message);
  }

  Job job_;
  std::shared_ptr<CancelToken> token_;
  Napi::Promise::Deferred deferred_;
  std::vector<Napi::Reference<Napi::Value>> pins_;
  std::vector<std::shared_ptr<v8::BackingStore>> backingStores_;
  ErrorCode code_ = ErrorCode::Internal;
  std::string message_;
};

// The async form takes the sync arguments followed by a cancel token (or undefined).
template <typename Job>
Napi::Value runAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Job job;
  std::shared_ptr<CancelToken> token;
  ArgReader reader(info, /*retainStorage=*/true);
  try {
    job.parse(reader);
    token = reader.cancelToken();
  } catch (const Error& e) {
    throw makeError(env, e.code(), e.what());
  }
  auto* worker = new JobWorker<Job>(env, std::move(job), reader, std::move(token));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

template <typename Job>
void exportJob(Napi::Env env, Napi::Object exports) {
  exports.Set(Job::kName, Napi::Function::New(env, runSync<Job>, Job::kName));
  const std::string asyncName = std::string(Job::kName) + "Async";
  exports.Set(asyncName, Napi::Function::New(env, runAsync<Job>, asyncName));
}

}  // namespace sparq::napi

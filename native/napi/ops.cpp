// The N-API side of the op table (core/op_table.h): one generic job per row. It reads the op's arguments
// in the order the row's visit() lists them, runs its check(), hands the op to the backend, and converts
// the op's result, if it has one. No math here.
#include "ops.h"

#include <limits>
#include <type_traits>
#include <utility>

#include "core/backend.h"
#include "worker.h"

namespace sparq::napi {

namespace {

// Reads each argument a row's visit() names, from the JavaScript arguments in order.
struct ArgumentParser {
  ArgReader& reader;

  void operator()(const char* name, TensorView& tensor) { tensor = reader.tensor(name); }
  void operator()(const char* name, bool& flag) { flag = reader.boolean(name); }
  void operator()(const char* name, double& number) { number = reader.number(name); }
  void operator()(const char* name, int64_t& integer) { integer = reader.integer(name); }
  void operator()(const char* name, int& integer) { integer = readInt32(name); }
  // Enums arrive as their integer codes; each op's check() rejects codes outside the enum.
  template <class Enum, std::enable_if_t<std::is_enum_v<Enum>, int> = 0>
  void operator()(const char* name, Enum& value) {
    value = static_cast<Enum>(readInt32(name));
  }
  // A quantization grid: bits, group size, symmetric flag, the scales' storage dtype.
  void operator()(const char*, QuantGrid& grid) {
    grid.bits = readInt32("bits");
    grid.groupSize = reader.integer("groupSize");
    grid.symmetric = reader.boolean("symmetric");
    const int32_t code = readInt32("scaleDType");
    SPARQ_CHECK(isValidDType(code), ErrorCode::InvalidArgument, "scaleDType: unknown dtype code " + std::to_string(code));
    grid.scaleDType = static_cast<DType>(code);
  }

  int32_t readInt32(const char* name) {
    const int64_t value = reader.integer(name);
    SPARQ_CHECK(value >= std::numeric_limits<int32_t>::min() && value <= std::numeric_limits<int32_t>::max(),
                ErrorCode::InvalidArgument,
                std::string("argument '") + name + "': " + std::to_string(value) + " is outside the 32-bit range");
    return static_cast<int32_t>(value);
  }
};

// The JavaScript form of the ops' results.
Napi::Value toJavaScript(Napi::Env env, double value) { return Napi::Number::New(env, value); }
Napi::Value toJavaScript(Napi::Env env, const CholeskyReport& report) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("relativeDamping", report.relativeDamping);
  o.Set("absoluteDamping", report.absoluteDamping);
  o.Set("attempts", report.attempts);
  return o;
}
Napi::Value toJavaScript(Napi::Env env, const MaskedCgReport& report) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("iterations", report.iterations);
  o.Set("converged", report.converged);
  return o;
}

template <class Op, class = void>
struct HasResult : std::false_type {};
template <class Op>
struct HasResult<Op, std::void_t<decltype(std::declval<Op&>().result)>> : std::true_type {};

template <class Op>
struct OpJob {
  static constexpr const char* kName = Op::kName;
  Op op;
  void parse(ArgReader& reader) {
    op.visit(ArgumentParser{reader});
    op.check();
  }
  void run(Backend& backend) { backend.run(op); }
  Napi::Value result(Napi::Env env) {
    if constexpr (HasResult<Op>::value) {
      return toJavaScript(env, op.result);
    } else {
      return env.Undefined();
    }
  }
};

}  // namespace

void exportOps(Napi::Env env, Napi::Object exports) {
#define SPARQ_EXPORT_OP(Op) exportJob<OpJob<Op>>(env, exports);
  SPARQ_OPS(SPARQ_EXPORT_OP)
#undef SPARQ_EXPORT_OP
}

}  // namespace sparq::napi

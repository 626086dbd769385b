// The op interface. A backend is a name, device memory, and a kernel table: one slot per row of the op
// table (op_table.h), filled with provide() by backends that implement the op. The CPU backend fills
// every slot and is the reference a device backend must match on random inputs. Kernels receive
// arguments already validated by the op's check(), so they only assert what those cannot know (e.g.
// finiteness).
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "op_table.h"

namespace sparq {

template <class Op>
using Kernel = std::function<void(Op&)>;

#define SPARQ_KERNEL_SLOT(Op) Kernel<Op>,
using KernelTable = std::tuple<SPARQ_OPS(SPARQ_KERNEL_SLOT) std::nullptr_t>;
#undef SPARQ_KERNEL_SLOT

[[noreturn]] void failUnsupportedOp(const char* backendName, const char* op);

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual Device device() const = 0;
  virtual std::string description() const = 0;

  // Kernel variants a backend can switch between (the CPU's instruction sets), so that tests and
  // benchmarks can run every code path on one machine. Backends with one variant keep the defaults.
  virtual std::vector<std::string> kernelVariants() const { return {name()}; }
  virtual std::string kernelVariant() const { return name(); }
  virtual void setKernelVariant(const std::string& variant);

  // Runs the op's kernel; BackendUnavailable when this backend has none.
  template <class Op>
  void run(Op& op) {
    const Kernel<Op>& kernel = std::get<Kernel<Op>>(kernels_);
    if (!kernel) failUnsupportedOp(name(), Op::kName);
    kernel(op);
  }
  template <class Op>
  bool supports() const {
    return static_cast<bool>(std::get<Kernel<Op>>(kernels_));
  }
  // The names (Op::kName) of the ops this backend has kernels for, in op-table order.
  std::vector<std::string> supportedOps() const;

  // Device memory; the CPU backend's tensors live in JavaScript memory and never call these.
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* ptr) = 0;
  virtual void copyToDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual void copyToHost(void* dst, const void* src, size_t bytes) = 0;
  virtual void synchronize() = 0;

 protected:
  template <class Op>
  void provide(Kernel<Op> kernel) {
    std::get<Kernel<Op>>(kernels_) = std::move(kernel);
  }

 private:
  KernelTable kernels_;
};

// Each addon defines this: the backend its bindings dispatch to.
Backend& addonBackend();

}  // namespace sparq

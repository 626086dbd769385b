#!/bin/sh
# Runs the native kernel tests against the AddressSanitizer build of the CPU addon (scripts/build-asan.mjs),
# so a use after free or an out-of-bounds write fails CI instead of passing by luck. Node itself is not
# instrumented: libasan is preloaded and only the addon's memory accesses are checked.
set -eu
cd "$(dirname "$0")/.."
[ -f build-asan/sparq_cpu.node ] || node scripts/build-asan.mjs
libasan=$(${CXX:-g++} -print-file-name=libasan.so)
# Leak checking is off: Node keeps its own allocations until exit. Errors abort with a report.
LD_PRELOAD="$libasan" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1 SPARQ_CPU_ADDON=build-asan/sparq_cpu.node \
  npx mocha --no-config --timeout 600000 --reporter dot \
  .out/test/linalg.test.js .out/test/mask.test.js .out/test/convert.test.js .out/test/elementwise.test.js \
  .out/test/nn.test.js .out/test/backward.test.js .out/test/async.test.js .out/test/backend.test.js \
  .out/test/compress.test.js .out/test/alps.test.js .out/test/tensor.test.js .out/test/errors.test.js \
  .out/test/packed.test.js .out/test/quant.test.js

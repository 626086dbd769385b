#!/bin/sh
# One-shot check for a machine with an NVIDIA GPU and a full CUDA toolkit (cuBLAS, cuSOLVER): builds the
# CPU and CUDA addons, runs the backend tests (CUDA against the CPU reference, packed linears included),
# then times the packed-format linears against dense. Usage: sh scripts/gpu-check.sh  (from the repo root;
# SHAPE=11008,4096 to change the benchmark; CUDA_ARCH=80 for an A100).
set -eu
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
npm ci
if [ -n "${CUDA_ARCH:-}" ]; then
  npx cmake-js compile --out build-cuda --CDCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH"
else
  npm run build:cuda
fi
npx tsc -p tsconfig.dev.json
node -e "import('./.out/lib/index.js').then((m) => { if (!m.isAvailable('cuda')) { console.error(m.loadAttempts()); process.exit(1); } console.log(m.backendInfo('cuda')); })"
npx mocha --no-config --timeout 600000 .out/test/backend.test.js
npx tsc -p tsconfig.json
node dist/cli/main.js bench --device cuda --shapes "1,${SHAPE:-4096,4096}" --shapes "16,${SHAPE:-4096,4096}" --shapes "64,${SHAPE:-4096,4096}"

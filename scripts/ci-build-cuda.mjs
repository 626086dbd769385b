// CI: builds the CUDA addon (`npm run build:cuda`) wherever a CUDA toolkit with cuBLAS and cuSOLVER is
// installed, so the CUDA tests run against it (and an addon that is built but does not load fails them,
// see test/backend.test.ts). Without nvcc, or with an nvcc that lacks those libraries' headers, it says
// why and exits 0; a build that starts and fails exits 1.
import { spawnSync } from 'node:child_process';
import { findNvcc, missingLibraries } from './cuda-toolkit.mjs';

const nvcc = findNvcc();
if (!nvcc) {
  console.log('build:cuda skipped: nvcc not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)');
  process.exit(0);
}
const missing = missingLibraries(nvcc);
if (missing.length > 0) {
  console.log(`build:cuda skipped: the toolkit of ${nvcc} has no ${missing.join(' or ')} (install cuBLAS and cuSOLVER's development packages to build the CUDA addon)`);
  process.exit(0);
}
console.log(`build:cuda: building the CUDA addon with ${nvcc}`);
const result = spawnSync('npm', ['run', 'build:cuda'], { stdio: 'inherit' });
process.exit(result.status === 0 ? 0 : 1);

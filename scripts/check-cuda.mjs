// Compile-checks every native/cuda/*.cu file for sm_90 with nvcc, so the CUDA kernels never rot on
// machines without a GPU or cuBLAS. Exits 0 with a note when nvcc is absent, 1 if any file fails.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findNvcc } from './cuda-toolkit.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const nvcc = findNvcc();
if (!nvcc) {
  console.log('check:cuda skipped: nvcc not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)');
  process.exit(0);
}
const sources = readdirSync(join(root, 'native', 'cuda')).filter((f) => f.endsWith('.cu')).sort();
if (sources.length === 0) {
  console.error('check:cuda: no .cu files under native/cuda');
  process.exit(1);
}
const out = mkdtempSync(join(tmpdir(), 'sparq-cuda-'));
let failed = 0;
try {
  for (const file of sources) {
    const started = performance.now();
    const args = ['-arch=sm_90', '-std=c++17', '-I', join(root, 'native'), '-Xcompiler', '-fPIC', '-c', join(root, 'native', 'cuda', file), '-o', join(out, `${file}.o`)];
    const result = spawnSync(nvcc, args, { encoding: 'utf8' });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    if (result.status === 0) {
      console.log(`ok      ${file} (${seconds} s)`);
    } else {
      failed++;
      console.log(`FAILED  ${file} (${seconds} s)\n${result.error ? `${result.error.message}\n` : ''}${result.stdout ?? ''}${result.stderr ?? ''}`);
    }
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
console.log(`check:cuda: ${sources.length - failed} of ${sources.length} files compiled with ${nvcc} for sm_90`);
process.exit(failed ? 1 : 0);

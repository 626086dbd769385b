// Finding a CUDA toolkit: nvcc (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin) and whether it comes with the
// cuBLAS and cuSOLVER headers the CUDA addon needs. Shared by check-cuda.mjs and ci-build-cuda.mjs.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

export function findNvcc() {
  const candidates = [];
  try {
    candidates.push(execFileSync('which', ['nvcc'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    // not on PATH
  }
  if (process.env.CUDA_HOME) candidates.push(join(process.env.CUDA_HOME, 'bin', 'nvcc'));
  candidates.push('/usr/local/cuda/bin/nvcc');
  return candidates.find((c) => c && existsSync(c));
}

/** Include folders a toolkit may keep its headers in (the toolkit's own, its targets/<arch>, the system's). */
function includeDirs(nvcc) {
  const roots = [process.env.CUDA_HOME, process.env.CUDA_PATH, dirname(dirname(nvcc)), '/usr/local/cuda'].filter(Boolean);
  const dirs = [];
  for (const root of roots) {
    dirs.push(join(root, 'include'));
    const targets = join(root, 'targets');
    if (existsSync(targets)) for (const t of readdirSync(targets)) dirs.push(join(targets, t, 'include'));
  }
  dirs.push('/usr/include');
  return [...new Set(dirs)];
}

/** The headers of cuBLAS and cuSOLVER that were not found (empty: the toolkit can build the addon). */
export function missingLibraries(nvcc) {
  const dirs = includeDirs(nvcc);
  return ['cublas_v2.h', 'cusolverDn.h'].filter((header) => !dirs.some((d) => existsSync(join(d, header))));
}

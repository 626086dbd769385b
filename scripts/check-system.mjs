// Runs before node-gyp builds the CPU addon (npm install): checks for a C++ compiler, make, python3 and
// OpenBLAS (headers and library) with the compiler itself, and when something is missing prints one
// sentence naming the package and the command instead of a compiler error deep in node-gyp's output.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const compiler = process.env.CXX ?? 'c++';
const ran = (command, args, input) => spawnSync(command, args, { input, stdio: ['pipe', 'ignore', 'ignore'] }).status === 0;
const missing = [];
if (!ran(compiler, ['--version'])) missing.push(['a C++ compiler', 'g++']);
if (!ran('make', ['--version'])) missing.push(['make', 'make']);
if (!ran('python3', ['--version'])) missing.push(['python3', 'python3']);
if (missing.length === 0) {
  const work = mkdtempSync(join(tmpdir(), 'sparq-check-'));
  try {
    const source = join(work, 'blas.cc');
    writeFileSync(source, '#include <cblas.h>\nint main() { float x = 1; return static_cast<int>(cblas_sdot(1, &x, 1, &x, 1)) - 1; }\n');
    if (!ran(compiler, ['-E', source, '-o', join(work, 'blas.i')])) missing.push(['the OpenBLAS headers (cblas.h)', 'libopenblas-dev']);
    else if (!ran(compiler, [source, '-o', join(work, 'blas'), '-lopenblas'])) missing.push(['the OpenBLAS library (-lopenblas)', 'libopenblas-dev']);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
if (missing.length > 0) {
  const packages = [...new Set(missing.map(([, pkg]) => pkg))].join(' ');
  console.error(
    `sparq: cannot build the native addon: ${missing.map(([what]) => what).join(', ')} not found. ` +
      `On Debian/Ubuntu run \`sudo apt-get install -y ${packages}\` (or \`sh scripts/setup.sh\` from the sparq folder), then install again.`,
  );
  process.exit(1);
}

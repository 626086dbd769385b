// Builds the CPU addon a second time with AddressSanitizer into build-asan/sparq_cpu.node, from the same
// sources and flags as binding.gyp, for CI's sanitizer run (scripts/test-asan.sh). Not used at install.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const gyp = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8'));
const target = gyp.targets.find((t) => t.target_name === 'sparq_cpu');
const nodeInclude = join(dirname(dirname(process.execPath)), 'include', 'node');
const addonApi = createRequire(import.meta.url)('node-addon-api').include_dir;
const out = join(root, 'build-asan');
mkdirSync(out, { recursive: true });
const compiler = process.env.CXX ?? 'g++';
const flags = ['-std=c++17', '-O1', '-g', '-fno-omit-frame-pointer', '-fsanitize=address', '-fPIC', '-fexceptions', '-frtti', '-Wall', '-Wno-unused-parameter'];
const defines = [...target.defines, 'NODE_GYP_MODULE_NAME=sparq_cpu'].map((d) => `-D${d}`);
const includes = [join(root, 'native'), addonApi, nodeInclude, process.env.SPARQ_NODE_INCLUDE].filter(Boolean).map((i) => `-I${i}`);
const objects = [];
for (const source of target.sources) {
  const object = join(out, `${source.replace(/[/.]/g, '_')}.o`);
  process.stdout.write(`asan: ${source}\n`);
  execFileSync(compiler, [...flags, ...defines, ...includes, '-c', join(root, source), '-o', object], { stdio: 'inherit' });
  objects.push(object);
}
execFileSync(compiler, ['-shared', '-fsanitize=address', '-o', join(out, 'sparq_cpu.node'), ...objects, ...target.libraries], { stdio: 'inherit' });
process.stdout.write(`asan: wrote ${join(out, 'sparq_cpu.node')}\n`);

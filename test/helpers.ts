// Shared test utilities: a seeded generator, float64 references, tolerance checks that name the worst
// element, and a loop over every CPU kernel variant this machine can run.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI_JSON_SCHEMAS, matchesSchema, type CliJsonCommand } from '../lib/cli/json-schemas.js';
import { backendInfo, isAvailable, loadAttempts, setKernelVariant } from '../lib/index.js';

/** mulberry32: small, seeded, good enough for test data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomNormal(n: number, random: () => number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; ++i) {
    const u = Math.max(random(), 1e-12);
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  }
  return out;
}

export function randomF32(n: number, random: () => number): Float32Array {
  return Float32Array.from(randomNormal(n, random));
}

/** Fills a typed array with NaN (floats) or 0xAB bytes (integers) so an unwritten element shows. */
export function poison<T extends Float32Array | Float64Array | Uint8Array | Uint16Array>(a: T): T {
  if (a instanceof Float32Array || a instanceof Float64Array) a.fill(NaN);
  else if (a instanceof Uint16Array) a.fill(0x7e01);
  else a.fill(0xab);
  return a;
}

/**
 * Asserts |actual − expected| ≤ atol + rtol·|expected| elementwise; a failure names the first worst
 * element and the largest difference.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: { atol: number; rtol: number },
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = -1;
  let worstExcess = 0;
  let maxDiff = 0;
  for (let i = 0; i < expected.length; ++i) {
    const diff = Math.abs(actual[i] - expected[i]);
    if (!(diff <= maxDiff)) maxDiff = diff;
    const allowed = tolerance.atol + tolerance.rtol * Math.abs(expected[i]);
    const excess = Number.isNaN(diff) ? Infinity : diff - allowed;
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
  }
  if (worst >= 0) {
    assert.fail(
      `${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} ` +
        `(max |diff| ${maxDiff}, atol ${tolerance.atol}, rtol ${tolerance.rtol})`,
    );
  }
}

/** Row-major float64 reference: op(a)[m×k] · op(b)[k×n]. */
export function matmulRef(
  a: ArrayLike<number>,
  aRows: number,
  aCols: number,
  transA: boolean,
  b: ArrayLike<number>,
  bRows: number,
  bCols: number,
  transB: boolean,
): Float64Array {
  const m = transA ? aCols : aRows;
  const k = transA ? aRows : aCols;
  const n = transB ? bRows : bCols;
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; ++i) {
    for (let j = 0; j < n; ++j) {
      let s = 0;
      for (let p = 0; p < k; ++p) {
        const av = transA ? a[p * aCols + i] : a[i * aCols + p];
        const bv = transB ? b[j * bCols + p] : b[p * bCols + j];
        s += av * bv;
      }
      out[i * n + j] = s;
    }
  }
  return out;
}

/** Runs `body` once per CPU kernel variant (scalar reference, avx2, avx512 where the CPU has them). */
export function forEachKernelVariant(body: (variant: string) => void): void {
  const { kernelVariants, kernelVariant } = backendInfo('cpu');
  try {
    for (const variant of kernelVariants) {
      setKernelVariant(variant);
      body(variant);
    }
  } finally {
    setKernelVariant(kernelVariant);
  }
}

export const ODD_SIZES = [1, 7, 129, 1000];

/**
 * The shared fixtures and data folder: $SPARQ_SHARED_DIR, else ../shared beside the checkout (where CI
 * puts it). Tests compile to .out/test, three levels below the checkout's parent.
 */
export function sharedDir(): string {
  const dir = process.env.SPARQ_SHARED_DIR ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'shared');
  assert.ok(existsSync(join(dir, 'fixtures')), `shared fixtures not found at ${dir} (set SPARQ_SHARED_DIR)`);
  return dir;
}

/**
 * The CLI as compiled with the tests (.out/lib/cli/main.js): `npm test` compiles lib/ and test/ together
 * first, so the CLI under test is always built from the current sources — never a stale dist/.
 */
export const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'cli', 'main.js');

export function fixturePath(name: string): string {
  return join(sharedDir(), 'fixtures', name);
}


/**
 * Runs `work` and counts the event loop's turns meanwhile (a setImmediate callback that re-arms itself):
 * structural evidence that the loop kept running, whatever the machine's load. Work that blocks the
 * JavaScript thread, or awaits only settled promises, gives few or no turns.
 */
export async function countLoopTurns<T>(work: () => Promise<T>): Promise<{ result: T; turns: number }> {
  let turns = 0;
  let inFlight = true;
  const turn = () => {
    turns++;
    if (inFlight) setImmediate(turn);
  };
  setImmediate(turn);
  try {
    return { result: await work(), turns };
  } finally {
    inFlight = false;
  }
}


/**
 * Why the CUDA tests cannot run here, or undefined when they can. The addon not built (or SPARQ_CUDA=0)
 * and a machine without a GPU are reasons to skip; an addon that is built but fails to load for any other
 * reason — a missing shared library, an undefined symbol, a device that will not start — throws, so the
 * test fails instead of skipping (CI builds the addon wherever cuBLAS is installed: .ci/run).
 */
export function cudaSkipReason(): string | undefined {
  if (isAvailable('cuda')) return undefined;
  const failed = loadAttempts().filter((a) => a.backend === 'cuda' && !a.ok);
  const reasons = failed.map((a) => a.error ?? '');
  const benign = (error: string) => error === 'not built' || error.startsWith('disabled by SPARQ_CUDA=0') || error.startsWith('no usable CUDA device');
  if (!reasons.every(benign)) {
    assert.fail(`the CUDA addon is built but does not load:\n${failed.map((a) => `${a.path}: ${a.error}`).join('\n')}`);
  }
  return reasons.join('; ');
}

/** Asserts a command's --json output matches its documented schema (lib/cli/json-schemas.ts). */
export function assertSchema(command: CliJsonCommand, value: unknown): void {
  assert.deepEqual(matchesSchema(CLI_JSON_SCHEMAS[command], value), [], `${command} --json does not match its schema in lib/cli/json-schemas.ts`);
}

/**
 * A Python whose torch has float8_e4m3fn (torch ≥ 2.1), to check sparq's FP8 bytes against: SPARQ_PYTHON,
 * /usr/bin/python3 or python3 on PATH, the first that has it; undefined when none does (tests skip).
 */
export function float8Python(): string | undefined {
  if (cachedFloat8Python !== null) return cachedFloat8Python;
  cachedFloat8Python = undefined;
  for (const candidate of [process.env.SPARQ_PYTHON, '/usr/bin/python3', 'python3']) {
    if (!candidate) continue;
    // The installed version first (importing torch takes seconds), then the dtype itself.
    const version = "import importlib.metadata as m, sys; v = m.version('torch').split('.'); sys.exit(0 if (int(v[0]), int(v[1])) >= (2, 1) else 1)";
    if (spawnSync(candidate, ['-c', version], { timeout: 60_000 }).status !== 0) continue;
    const probe = spawnSync(candidate, ['-c', 'import torch; torch.float8_e4m3fn'], { encoding: 'utf8', timeout: 60_000 });
    if (probe.status === 0) {
      cachedFloat8Python = candidate;
      break;
    }
  }
  return cachedFloat8Python;
}
let cachedFloat8Python: string | undefined | null = null;

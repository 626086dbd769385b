// Loads the native addons and picks the backend for a device. The CPU addon (node-gyp, built on
// `npm install`) is required; the CUDA addon (cmake-js, `npm run build:cuda`) is optional. Every failed
// load is remembered with the fix, and the first time CUDA is wanted but missing sparq says why, once.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AbortError, BackendUnavailableError, fromNativeError } from '../errors.js';

export type Device = 'cpu' | 'cuda';

/** Everything an addon exports. Ops take tensors as (storage, dtypeCode, shape) triples. */
export interface NativeBackend {
  info(): NativeInfo;
  setThreads(threads: number): void;
  setKernelVariant(variant: string): void;
  newCancelToken(): object;
  cancel(token: object): void;
  allocate(bytes: number): object;
  release(buffer: object): void;
  copyToDevice(buffer: object, host: ArrayBufferView): void;
  copyToHost(buffer: object, host: ArrayBufferView): void;
  [op: string]: unknown;
}

export interface NativeInfo {
  backend: Device;
  description: string;
  kernelVariant: string;
  kernelVariants: string[];
  threads: number;
  /** The ops this backend has kernels for (rows of native/core/op_table.h), in table order. */
  ops: string[];
}

export interface LoadAttempt {
  backend: Device;
  path: string;
  ok: boolean;
  error?: string;
  fix?: string;
}

const attempts: LoadAttempt[] = [];
const loaded = new Map<Device, NativeBackend | null>();
let cudaFallbackReported = false;

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if (JSON.parse(readFileSync(manifest, 'utf8')).name === 'sparq') return dir;
      } catch {
        // An unreadable package.json is not ours; keep climbing.
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new BackendUnavailableError('cannot find the sparq package folder to load its addon from');
    dir = parent;
  }
}

const ADDONS: Record<Device, { file: string; fix: string }> = {
  cpu: {
    file: join('build', 'Release', 'sparq_cpu.node'),
    fix: 'rebuild it with `npm rebuild sparq` (needs g++, make, python3 and libopenblas-dev)',
  },
  cuda: {
    file: join('build-cuda', 'Release', 'sparq_cuda.node'),
    fix: 'build it with `npm run build:cuda` on a machine with the CUDA toolkit (nvcc, cuBLAS, cuSOLVER) and a GPU',
  },
};

function tryLoad(device: Device): NativeBackend | null {
  if (loaded.has(device)) return loaded.get(device)!;
  let backend: NativeBackend | null = null;
  // SPARQ_CPU_ADDON / SPARQ_CUDA_ADDON load another build of an addon (CI's AddressSanitizer build).
  const override = process.env[device === 'cpu' ? 'SPARQ_CPU_ADDON' : 'SPARQ_CUDA_ADDON'];
  const path = override ? resolve(override) : join(packageRoot(), ADDONS[device].file);
  if (device === 'cuda' && process.env.SPARQ_CUDA === '0') {
    attempts.push({ backend: device, path, ok: false, error: 'disabled by SPARQ_CUDA=0', fix: 'unset SPARQ_CUDA' });
  } else if (!existsSync(path)) {
    attempts.push({ backend: device, path, ok: false, error: 'not built', fix: ADDONS[device].fix });
  } else {
    try {
      backend = createRequire(import.meta.url)(path) as NativeBackend;
      backend.info(); // a CUDA addon without a usable GPU fails here
      attempts.push({ backend: device, path, ok: true });
    } catch (error) {
      backend = null;
      attempts.push({ backend: device, path, ok: false, error: (error as Error).message, fix: ADDONS[device].fix });
    }
  }
  loaded.set(device, backend);
  return backend;
}

function failureReport(device: Device): string {
  return attempts
    .filter((a) => a.backend === device && !a.ok)
    .map((a) => `${a.path}: ${a.error}; ${a.fix}`)
    .join('\n');
}

/** The addon for a device; throws BackendUnavailableError listing every failed load and its fix. */
export function backend(device: Device): NativeBackend {
  const b = tryLoad(device);
  if (b) return b;
  throw new BackendUnavailableError(`the ${device} backend is not available:\n${failureReport(device)}`);
}

export function isAvailable(device: Device): boolean {
  return tryLoad(device) !== null;
}

/**
 * The device to use when the caller does not name one: SPARQ_DEVICE (cpu | cuda | auto), else CUDA when
 * its addon loads, else CPU. Falling back from CUDA prints the reason once on stderr.
 */
export function defaultDevice(): Device {
  const wanted = process.env.SPARQ_DEVICE ?? 'auto';
  if (wanted === 'cpu') return 'cpu';
  if (isAvailable('cuda')) return 'cuda';
  if (!cudaFallbackReported && (wanted === 'cuda' || existsSync(join(packageRoot(), ADDONS.cuda.file)))) {
    cudaFallbackReported = true;
    process.stderr.write(`sparq: CUDA backend unavailable, running on CPU.\n${failureReport('cuda')}\n`);
  }
  return 'cpu';
}

/** What was tried when loading the addons, for diagnostics. */
export function loadAttempts(): readonly LoadAttempt[] {
  return attempts;
}

export function backendInfo(device: Device = 'cpu'): NativeInfo {
  return backend(device).info();
}

// A backend's ops never change once loaded; info() builds them afresh on every call.
const opsOf = new Map<Device, ReadonlySet<string>>();

/** Whether the device's backend has a kernel for an op (false when the backend itself is missing). */
export function supportsOp(op: string, device: Device = 'cpu'): boolean {
  if (!isAvailable(device)) return false;
  let ops = opsOf.get(device);
  if (!ops) opsOf.set(device, (ops = new Set(backend(device).info().ops)));
  return ops.has(op);
}

/** Sets the CPU thread count (sparq's pool and OpenBLAS alike). */
export function setThreads(threads: number): void {
  callSync('cpu', 'setThreads', [threads]);
}

/** Selects a kernel variant, e.g. the CPU's 'scalar' reference, 'avx2' or 'avx512'. */
export function setKernelVariant(variant: string, device: Device = 'cpu'): void {
  callSync(device, 'setKernelVariant', [variant]);
}

/** Calls a native function on the JavaScript thread, rethrowing its errors as SparqErrors. */
/** Sees every call made on the JavaScript thread (tests use it to prove heavy work stays off it). */
export type SyncCallObserver = (device: Device, name: string, args: readonly unknown[]) => void;
let syncCallObserver: SyncCallObserver | undefined;

/** Installs (or, with undefined, removes) the observer of synchronous native calls; returns the previous one. */
export function observeSyncCalls(observer: SyncCallObserver | undefined): SyncCallObserver | undefined {
  const previous = syncCallObserver;
  syncCallObserver = observer;
  return previous;
}

export function callSync<T = unknown>(device: Device, name: string, args: unknown[]): T {
  syncCallObserver?.(device, name, args);
  const fn = backend(device)[name] as (...a: unknown[]) => T;
  try {
    return fn(...args);
  } catch (error) {
    throw fromNativeError(error);
  }
}

// Asynchronous calls per device run one after another: native jobs take turns on the cores anyway,
// and queuing them here keeps at most one of libuv's few worker threads busy with compute, leaving the
// others to file and network I/O.
const queues = new Map<Device, Promise<unknown>>();

/**
 * Runs `name`Async on a worker thread, after the device's earlier asynchronous calls. The promise
 * rejects with AbortError when the signal aborts: before the call starts it never runs; while it runs
 * the kernel notices between chunks of work and stops early.
 */
export function callAsync<T = unknown>(device: Device, name: string, args: unknown[], signal?: AbortSignal): Promise<T> {
  const callSite = new Error();
  if (signal?.aborted) return Promise.reject(new AbortError());
  const addon = backend(device);
  const previous = queues.get(device) ?? Promise.resolve();
  const run = previous.then(async () => {
    if (signal?.aborted) throw new AbortError();
    const token = addon.newCancelToken();
    const onAbort = () => addon.cancel(token);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await (addon[`${name}Async`] as (...a: unknown[]) => Promise<T>)(...args, token);
    } catch (error) {
      throw fromNativeError(error, callSite);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  });
  const settled = run.catch(() => undefined);
  queues.set(device, settled);
  // Drop the queue's tail once it is idle so finished promises are not kept alive.
  void settled.then(() => {
    if (queues.get(device) === settled) queues.delete(device);
  });
  return run;
}

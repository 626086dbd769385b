// Tensor: dtype, shape, strides and device over storage that JavaScript owns (a TypedArray for CPU
// tensors, a device buffer for CUDA ones). CPU tensors wrap TypedArrays without copying; views
// (reshape, transpose) share storage, and ops ask for contiguous row-major tensors.
import { AsyncLocalStorage } from 'node:async_hooks';
import { ALL_DTYPES, arrayTypeFor, dtypeCode, dtypeOfArray, dtypeSize, isDType, isFloatingDType } from './dtype.js';
import { DeviceMismatchError, DTypeMismatchError, InvalidArgumentError, ShapeMismatchError } from '../errors.js';
import { callAsync, callSync } from './native.js';
import { checkInteger, checkOneOf, describe, invalid } from '../validate.js';
/** Memory on an accelerator, freed by release() or when garbage-collected. */
export class DeviceStorage {
    device;
    handle;
    bytes;
    constructor(device, handle, bytes) {
        this.device = device;
        this.handle = handle;
        this.bytes = bytes;
    }
    released = false;
}
/** Buffers below this size come from the JavaScript heap as usual. */
const ARENA_MIN_BYTES = 64 * 1024;
/** The arena of the `run` call whose (possibly asynchronous) work is executing, per async context. */
const activeArena = new AsyncLocalStorage();
/**
 * A pool of CPU buffers for work that allocates the same large tensors again and again (a training
 * step). Inside `arena.run(fn)` — fn and everything it awaits, but no unrelated work that interleaves with
 * it (the arena follows the async context) — Tensor.zeros takes buffers of 64 KiB or more from the
 * pool, zero-filled again; `recycle()` returns every buffer handed out since the last recycle. Fresh
 * large allocations cost a page fault per 4 KiB on first touch, which on virtual machines can take longer
 * than the kernel that fills the buffer. The caller guarantees that no tensor allocated inside `run` is
 * used after `recycle()`.
 */
export class TensorArena {
    free = new Map();
    lent = [];
    run(fn) {
        return activeArena.run(this, fn);
    }
    /**
     * Runs fn outside any arena: for what is allocated inside an arena's run but outlives its next
     * recycle (an accumulator created on first use, a result kept across batches).
     */
    static outside(fn) {
        return activeArena.exit(fn);
    }
    take(dtype, numel) {
        const key = `${dtype}:${numel}`;
        let buffer = this.free.get(key)?.pop();
        if (buffer instanceof BigInt64Array)
            buffer.fill(0n);
        else if (buffer)
            buffer.fill(0);
        else
            buffer = new (arrayTypeFor(dtype))(numel);
        this.lent.push([key, buffer]);
        return buffer;
    }
    recycle() {
        for (const [key, buffer] of this.lent) {
            const list = this.free.get(key);
            if (list)
                list.push(buffer);
            else
                this.free.set(key, [buffer]);
        }
        this.lent = [];
    }
    /** Bytes held for reuse. */
    get pooledBytes() {
        let bytes = 0;
        for (const list of this.free.values())
            for (const b of list)
                bytes += b.byteLength;
        return bytes;
    }
}
export function shapeNumel(shape) {
    return shape.reduce((a, b) => a * b, 1);
}
function rowMajorStrides(shape) {
    const strides = new Array(shape.length);
    let stride = 1;
    for (let i = shape.length - 1; i >= 0; --i) {
        strides[i] = stride;
        stride *= shape[i];
    }
    return strides;
}
function checkShape(param, shape) {
    if (!Array.isArray(shape) || shape.length > 8)
        invalid(param, 'an array of at most 8 dimensions', shape);
    return shape.map((d, i) => checkInteger(`${param}[${i}]`, d, 0));
}
export function formatShape(shape) {
    return `[${shape.join(', ')}]`;
}
export class Tensor {
    dtype;
    shape;
    strides;
    device;
    /** Offset in elements of this view's first element within its storage (CPU views only). */
    offset;
    storage;
    constructor(storage, dtype, shape, strides, offset = 0) {
        this.storage = storage;
        this.dtype = dtype;
        this.shape = Object.freeze([...shape]);
        this.strides = Object.freeze(strides ? [...strides] : rowMajorStrides(shape));
        this.offset = offset;
        this.device = storage instanceof DeviceStorage ? storage.device : 'cpu';
    }
    /**
     * Wraps a TypedArray without copying. The dtype defaults to the array's element type; Uint16Array
     * needs 'f16' or 'bf16'. The shape defaults to 1-D.
     */
    static fromTypedArray(data, shape, dtype) {
        if (!ArrayBuffer.isView(data))
            invalid('data', 'a TypedArray', data);
        const resolved = dtype ?? dtypeOfArray(data);
        if (resolved === undefined)
            invalid('dtype', "'f16' or 'bf16' for a Uint16Array", dtype);
        if (!isDType(resolved))
            invalid('dtype', 'a dtype name', resolved);
        if (!(data instanceof arrayTypeFor(resolved))) {
            throw new DTypeMismatchError(`data: dtype ${resolved} is stored in a ${arrayTypeFor(resolved).name}, received ${describe(data)}`);
        }
        const dims = shape === undefined ? [data.length] : checkShape('shape', shape);
        if (shapeNumel(dims) !== data.length) {
            throw new ShapeMismatchError(`shape ${formatShape(dims)} holds ${shapeNumel(dims)} elements, the array has ${data.length}`);
        }
        return new Tensor(data, resolved, dims);
    }
    /** A zero-filled tensor. */
    static zeros(shape, dtype = 'f32', device = 'cpu') {
        const dims = checkShape('shape', shape);
        if (!isDType(dtype))
            invalid('dtype', 'a dtype name', dtype);
        const numel = shapeNumel(dims);
        const arena = numel * dtypeSize(dtype) >= ARENA_MIN_BYTES ? activeArena.getStore() : undefined;
        const host = arena ? arena.take(dtype, numel) : new (arrayTypeFor(dtype))(numel);
        const cpu = new Tensor(host, dtype, dims);
        return device === 'cpu' ? cpu : cpu.toDevice(device);
    }
    /** A tensor with every element equal to `value` (rounded to the dtype). */
    static full(shape, value, dtype = 'f32') {
        const dims = checkShape('shape', shape);
        return Tensor.fromNumbers(new Float64Array(shapeNumel(dims)).fill(value), dims, dtype);
    }
    /**
     * Copies plain numbers into a new tensor of the given dtype: float dtypes round to nearest even;
     * integer dtypes take integers in their range and reject anything else.
     */
    static fromNumbers(values, shape, dtype = 'f32') {
        if (!isDType(dtype))
            invalid('dtype', 'a dtype name', dtype);
        if (isFloatingDType(dtype))
            return Tensor.fromTypedArray(Float64Array.from(values), shape).to(dtype);
        const out = new (arrayTypeFor(dtype))(values.length);
        const probe = new (arrayTypeFor(dtype))(1);
        for (let i = 0; i < values.length; ++i) {
            const v = values[i];
            if (dtype === 'i64') {
                if (!Number.isSafeInteger(v))
                    invalid(`values[${i}]`, 'a safe integer for i64', v);
                out[i] = BigInt(v);
                continue;
            }
            probe[0] = v;
            if (!Number.isInteger(v) || probe[0] !== v)
                invalid(`values[${i}]`, `an integer representable as ${dtype}`, v);
            out[i] = v;
        }
        return Tensor.fromTypedArray(out, shape ?? [values.length], dtype);
    }
    get ndim() {
        return this.shape.length;
    }
    get numel() {
        return shapeNumel(this.shape);
    }
    get byteLength() {
        return this.numel * dtypeSize(this.dtype);
    }
    get isContiguous() {
        const expected = rowMajorStrides(this.shape);
        return this.shape.every((d, i) => d <= 1 || this.strides[i] === expected[i]);
    }
    /** The elements of a contiguous CPU tensor, sharing memory with it. */
    get data() {
        if (this.device !== 'cpu') {
            throw new DeviceMismatchError(`tensor.data is for CPU tensors; this one is on ${this.device} (use .cpu() first)`);
        }
        this.requireContiguous('tensor.data');
        const array = this.storage;
        if (this.offset === 0 && array.length === this.numel)
            return array;
        return array.subarray(this.offset, this.offset + this.numel);
    }
    /** The (storage, dtypeCode, shape) triple the native ops take. */
    nativeArgs(param = 'tensor') {
        this.requireContiguous(param);
        if (this.storage instanceof DeviceStorage) {
            if (this.storage.released)
                throw new InvalidArgumentError(`${param}: its device memory was released`);
            return [this.storage.handle, dtypeCode(this.dtype), [...this.shape]];
        }
        return [this.data, dtypeCode(this.dtype), [...this.shape]];
    }
    requireContiguous(param) {
        if (!this.isContiguous) {
            throw new InvalidArgumentError(`${param}: expected a contiguous tensor, received a strided view of shape ${formatShape(this.shape)} (call .contiguous())`);
        }
    }
    /** The same elements with another shape (one entry may be -1). Contiguous tensors only; shares storage. */
    reshape(shape) {
        this.requireContiguous('reshape');
        const dims = [...shape];
        const unknown = dims.indexOf(-1);
        if (unknown >= 0) {
            const known = shapeNumel(dims.filter((_, i) => i !== unknown));
            dims[unknown] = known === 0 ? 0 : this.numel / known;
        }
        checkShape('shape', dims);
        if (shapeNumel(dims) !== this.numel) {
            throw new ShapeMismatchError(`reshape: cannot view ${formatShape(this.shape)} (${this.numel} elements) as ${formatShape(shape)}`);
        }
        return new Tensor(this.storage, this.dtype, dims, undefined, this.offset);
    }
    /** Swaps the last two dimensions without copying. */
    transpose() {
        if (this.ndim < 2)
            invalid('transpose', 'a tensor of at least 2 dimensions', `shape ${formatShape(this.shape)}`);
        if (this.device !== 'cpu')
            throw new DeviceMismatchError('transpose views are only supported on CPU tensors');
        const shape = [...this.shape];
        const strides = [...this.strides];
        const n = shape.length;
        [shape[n - 2], shape[n - 1]] = [shape[n - 1], shape[n - 2]];
        [strides[n - 2], strides[n - 1]] = [strides[n - 1], strides[n - 2]];
        return new Tensor(this.storage, this.dtype, shape, strides, this.offset);
    }
    /** Rows [start, end) of the first dimension, sharing storage. */
    narrow(start, end) {
        if (this.ndim < 1)
            invalid('narrow', 'a tensor of at least 1 dimension', 'a scalar');
        checkInteger('start', start, 0, this.shape[0]);
        checkInteger('end', end, start, this.shape[0]);
        if (this.device !== 'cpu')
            throw new DeviceMismatchError('narrow views are only supported on CPU tensors');
        const shape = [...this.shape];
        shape[0] = end - start;
        return new Tensor(this.storage, this.dtype, shape, this.strides, this.offset + start * this.strides[0]);
    }
    /** This tensor if contiguous, else a contiguous copy. */
    contiguous() {
        if (this.isContiguous)
            return this;
        const source = this.storage;
        const out = new (arrayTypeFor(this.dtype))(this.numel);
        const n = this.ndim;
        const index = new Array(n).fill(0);
        let src = this.offset;
        for (let i = 0; i < out.length; ++i) {
            out[i] = source[src];
            // Advance the multi-index, last dimension fastest.
            for (let d = n - 1; d >= 0; --d) {
                index[d] += 1;
                src += this.strides[d];
                if (index[d] < this.shape[d])
                    break;
                src -= this.strides[d] * this.shape[d];
                index[d] = 0;
            }
        }
        return new Tensor(out, this.dtype, this.shape);
    }
    clone() {
        const copy = Tensor.zeros(this.shape, this.dtype, this.device);
        callSync(this.device, 'convert', [...this.contiguous().nativeArgs('src'), ...copy.nativeArgs('dst')]);
        return copy;
    }
    /** Like clone(), on a worker thread (large copies fault in fresh pages: tens of ms per 32 MB here). */
    async cloneAsync(options = {}) {
        const copy = Tensor.zeros(this.shape, this.dtype, this.device);
        await callAsync(this.device, 'convert', [...this.contiguous().nativeArgs('src'), ...copy.nativeArgs('dst')], options.signal);
        return copy;
    }
    /** Converts to another dtype (rounding to nearest even; NaN and infinities kept). */
    to(dtype) {
        checkOneOf('dtype', dtype, ALL_DTYPES);
        const src = this.contiguous();
        if (dtype === this.dtype)
            return src;
        const dst = Tensor.zeros(this.shape, dtype, this.device);
        callSync(this.device, 'convert', [...src.nativeArgs('src'), ...dst.nativeArgs('dst')]);
        return dst;
    }
    /** Like to(), on a worker thread. */
    async toAsync(dtype, options = {}) {
        checkOneOf('dtype', dtype, ALL_DTYPES);
        const src = this.contiguous();
        if (dtype === this.dtype)
            return src;
        const dst = Tensor.zeros(this.shape, dtype, this.device);
        await callAsync(this.device, 'convert', [...src.nativeArgs('src'), ...dst.nativeArgs('dst')], options.signal);
        return dst;
    }
    /** Copies to another device (or returns this tensor if already there). */
    toDevice(device) {
        checkOneOf('device', device, ['cpu', 'cuda']);
        if (device === this.device)
            return this;
        if (this.device === 'cpu') {
            const host = this.contiguous();
            const handle = callSync(device, 'allocate', [host.byteLength]);
            const storage = new DeviceStorage(device, handle, host.byteLength);
            if (host.numel > 0)
                callSync(device, 'copyToDevice', [handle, host.data]);
            return new Tensor(storage, this.dtype, this.shape);
        }
        const storage = this.storage;
        const host = new (arrayTypeFor(this.dtype))(this.numel);
        if (this.numel > 0)
            callSync(this.device, 'copyToHost', [storage.handle, host]);
        return new Tensor(host, this.dtype, this.shape);
    }
    cpu() {
        return this.toDevice('cpu');
    }
    cuda() {
        return this.toDevice('cuda');
    }
    /** Frees device memory now instead of at garbage collection. No-op for CPU tensors. */
    release() {
        if (this.storage instanceof DeviceStorage && !this.storage.released) {
            callSync(this.device, 'release', [this.storage.handle]);
            this.storage.released = true;
        }
    }
    /** The elements as float32 (a copy unless already f32 on CPU). */
    toFloat32Array() {
        return this.cpu().to('f32').data;
    }
    /** The elements as float64 numbers (exact for every float dtype). */
    toFloat64Array() {
        return this.cpu().to('f64').data;
    }
    toString() {
        return `Tensor(${this.dtype}${formatShape(this.shape)} on ${this.device})`;
    }
}
//# sourceMappingURL=tensor.js.map
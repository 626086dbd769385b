// Tensor construction, zero-copy wrapping, views and dtype plumbing.
import assert from 'node:assert/strict';
import { ALL_DTYPES, dtypeSize, ShapeMismatchError, Tensor, TensorArena } from '../lib/index.js';
describe('Tensor', () => {
    it('wraps a TypedArray without copying and writes through', () => {
        const data = new Float32Array([1, 2, 3, 4, 5, 6]);
        const t = Tensor.fromTypedArray(data, [2, 3]);
        assert.equal(t.data, data);
        data[0] = 42;
        assert.equal(t.data[0], 42);
        assert.deepEqual(t.shape, [2, 3]);
        assert.deepEqual(t.strides, [3, 1]);
        assert.equal(t.byteLength, 24);
        assert.equal(t.toString(), 'Tensor(f32[2, 3] on cpu)');
    });
    it('knows every dtype and its size', () => {
        assert.deepEqual(ALL_DTYPES, ['f32', 'f16', 'bf16', 'i8', 'u8', 'i32', 'i64', 'f64']);
        assert.deepEqual(ALL_DTYPES.map(dtypeSize), [4, 2, 2, 1, 1, 4, 8, 8]);
        for (const dtype of ALL_DTYPES)
            assert.equal(Tensor.zeros([3], dtype).byteLength, 3 * dtypeSize(dtype));
    });
    it('reshapes (with -1) as a view of the same storage', () => {
        const t = Tensor.fromTypedArray(new Float32Array(12), [3, 4]);
        const r = t.reshape([2, -1]);
        assert.deepEqual(r.shape, [2, 6]);
        r.data[5] = 7;
        assert.equal(t.data[5], 7);
        assert.throws(() => t.reshape([5, 3]), ShapeMismatchError);
    });
    it('transposes and narrows as views, and contiguous() materializes them in row-major order', () => {
        const t = Tensor.fromTypedArray(Float32Array.from({ length: 6 }, (_, i) => i), [2, 3]);
        const tt = t.transpose();
        assert.deepEqual(tt.shape, [3, 2]);
        assert.equal(tt.isContiguous, false);
        assert.deepEqual([...tt.contiguous().data], [0, 3, 1, 4, 2, 5]);
        const rows = Tensor.fromTypedArray(Float32Array.from({ length: 12 }, (_, i) => i), [4, 3]).narrow(1, 3);
        assert.deepEqual([...rows.data], [3, 4, 5, 6, 7, 8]);
        const narrowedThenTransposed = Tensor.fromTypedArray(Float32Array.from({ length: 12 }, (_, i) => i), [4, 3]).narrow(1, 3).transpose();
        assert.deepEqual([...narrowedThenTransposed.contiguous().data], [3, 6, 4, 7, 5, 8]);
    });
    it('converts through to() and round-trips through float64 exactly for representable values', () => {
        const show = (a) => [...a].map((v) => (Object.is(v, -0) ? '-0' : v));
        const values = [0, -1.5, 2 ** -24, 65504, -0];
        for (const dtype of ['f16', 'f32']) {
            assert.deepEqual(show(Tensor.fromNumbers(values, undefined, dtype).toFloat64Array()), [0, -1.5, 2 ** -24, 65504, '-0'], dtype);
        }
        // bf16 keeps 8 significant bits: 65504 rounds to 65536.
        assert.deepEqual(show(Tensor.fromNumbers(values, undefined, 'bf16').toFloat64Array()), [0, -1.5, 2 ** -24, 65536, '-0']);
        assert.deepEqual([...Tensor.full([2, 2], 0.1, 'f64').data], [0.1, 0.1, 0.1, 0.1]);
        assert.deepEqual([...Tensor.full([3], 1 / 3, 'f32').data], [Math.fround(1 / 3), Math.fround(1 / 3), Math.fround(1 / 3)]);
    });
    it('builds integer tensors from numbers and rejects values the dtype cannot hold', () => {
        assert.deepEqual([...Tensor.full([3], 7, 'i32').data], [7, 7, 7]);
        assert.deepEqual([...Tensor.fromNumbers([0, 255], undefined, 'u8').data], [0, 255]);
        assert.deepEqual([...Tensor.fromNumbers([-5, 2 ** 40], undefined, 'i64').data], [-5n, 2n ** 40n]);
        assert.throws(() => Tensor.fromNumbers([256], undefined, 'u8'), /representable as u8/);
        assert.throws(() => Tensor.fromNumbers([1.5], undefined, 'i32'), /representable as i32/);
    });
    it('clones into independent storage', () => {
        const t = Tensor.fromTypedArray(new Float64Array([1, 2]));
        const c = t.clone();
        c.data[0] = 9;
        assert.equal(t.data[0], 1);
    });
});
describe('TensorArena', () => {
    it('hands recycled buffers of 64 KiB or more back zero-filled, and leaves small ones and allocations outside run alone', () => {
        const arena = new TensorArena();
        const big = arena.run(() => Tensor.zeros([128, 128]));
        const small = arena.run(() => Tensor.zeros([4, 4]));
        big.data.fill(7);
        arena.recycle();
        assert.equal(arena.pooledBytes, 128 * 128 * 4, 'only the large buffer is pooled');
        const again = arena.run(() => Tensor.zeros([16, 1024]));
        assert.equal(again.data.buffer, big.data.buffer, 'same element count and dtype: the buffer is reused');
        assert.ok(again.data.every((v) => v === 0), 'and zeroed');
        assert.equal(arena.pooledBytes, 0);
        const outside = Tensor.zeros([128, 128]);
        assert.notEqual(outside.data.buffer, big.data.buffer, 'outside run: a fresh buffer');
        const wide = arena.run(() => Tensor.zeros([8192], 'i64'));
        wide.data.fill(3n);
        arena.recycle();
        assert.ok(arena.run(() => Tensor.zeros([8192], 'i64')).data.every((v) => v === 0n));
        assert.equal(small.numel, 16);
    });
    it('follows its run across awaits but not into unrelated work, and lets TensorArena.outside opt out', async () => {
        const arena = new TensorArena();
        const pooled = arena.run(() => Tensor.zeros([128, 128]));
        arena.recycle();
        let unrelated;
        const tick = new Promise((resolve) => setImmediate(() => {
            unrelated = Tensor.zeros([128, 128]); // interleaves with the run below, outside its context
            resolve();
        }));
        const [afterAwait, escaped] = await arena.run(async () => {
            await tick;
            const escapedTensor = TensorArena.outside(() => Tensor.zeros([128, 128]));
            return [Tensor.zeros([128, 128]), escapedTensor];
        });
        assert.equal(afterAwait.data.buffer, pooled.data.buffer, 'an allocation after an await inside run comes from the arena');
        assert.notEqual(unrelated.data.buffer, pooled.data.buffer, 'work outside the run does not take arena buffers');
        assert.notEqual(escaped.data.buffer, pooled.data.buffer, 'outside() allocates fresh memory inside a run');
    });
});
//# sourceMappingURL=tensor.test.js.map
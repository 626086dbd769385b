// Bad input gets a typed error naming the argument: from the TypeScript checks, and from the native
// re-checks when the addon is called directly with arguments that lie.
import assert from 'node:assert/strict';
import { DTypeMismatchError, gemm, InvalidArgumentError, setThreads, ShapeMismatchError, Tensor, topkMask, } from '../lib/index.js';
import { dtypeCode } from '../lib/tensor/dtype.js';
import { backend, callSync } from '../lib/tensor/native.js';
describe('typed errors', () => {
    it('come from TypeScript validation with the parameter, the expectation and what was received', () => {
        assert.throws(() => Tensor.fromTypedArray(new Float32Array(6), [4, 2]), ShapeMismatchError);
        assert.throws(() => Tensor.fromTypedArray(new Uint16Array(4)), (e) => e instanceof InvalidArgumentError && /f16/.test(e.message));
        assert.throws(() => Tensor.fromTypedArray(new Float32Array(4), [4], 'f16'), DTypeMismatchError);
        assert.throws(() => topkMask(Tensor.zeros([2, 3]), 1.5), (e) => e instanceof InvalidArgumentError && /k: expected an integer/.test(e.message));
        assert.throws(() => gemm(Tensor.zeros([2, 2], 'f32'), Tensor.zeros([2, 2], 'f64')), DTypeMismatchError);
        assert.throws(() => Tensor.zeros([2, 3]).reshape([4, 2]), ShapeMismatchError);
        assert.throws(() => Tensor.zeros([2, 3]).transpose().data, (e) => e instanceof InvalidArgumentError && /contiguous/.test(e.message));
        assert.throws(() => setThreads(0), (e) => e instanceof InvalidArgumentError && /1\.\.1024/.test(e.message));
    });
    it('come from the native re-checks when the addon is called with lying arguments', () => {
        const f32 = dtypeCode('f32');
        const cases = [
            // Storage shorter than the shape claims.
            ['gemm', [new Float32Array(5), f32, [2, 3], false, new Float32Array(6), f32, [3, 2], false, new Float32Array(4), f32, [2, 2], 1, 0], ShapeMismatchError, /needs 24 bytes, its storage has 20/],
            // Unknown dtype code.
            ['convert', [new Float32Array(2), 42, [2], new Float32Array(2), f32, [2]], InvalidArgumentError, /unknown dtype code 42/],
            // A u8 buffer labelled f32 at an odd offset.
            ['unary', [0, new Uint8Array(9).subarray(1), f32, [2], new Float32Array(2), f32, [2], 0, 0], InvalidArgumentError, /aligned/],
            // Wrong argument types.
            ['axpy', ['one', new Float32Array(1), f32, [1], new Float32Array(1), f32, [1]], InvalidArgumentError, /'alpha': expected a number/],
            ['gemm', [new Float32Array(1)], InvalidArgumentError, /too few arguments/],
            ['cholesky', [new Float32Array(6), f32, [2, 3], new Float32Array(6), f32, [2, 3], false, false, 0, 3], ShapeMismatchError, /square/],
            ['nmMask', [new Float32Array(8), f32, [1, 8], 2, 4, true, new Float32Array(8), f32, [1, 8]], DTypeMismatchError, /mask: expected dtype u8/],
        ];
        for (const [name, args, type, message] of cases) {
            assert.throws(() => callSync('cpu', name, args), (e) => e instanceof type && message.test(e.message), name);
        }
    });
    it('never crash the process on a raw native call: errors carry a code', () => {
        try {
            backend('cpu').gemm(null, 0, [], false);
            assert.fail('expected a throw');
        }
        catch (e) {
            assert.equal(e.code, 'SPARQ_INVALID_ARGUMENT');
        }
    });
});
//# sourceMappingURL=errors.test.js.map
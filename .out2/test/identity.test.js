// The method framework was redesigned (issue 12) without changing any result: the safetensors that
// `prune` writes for magnitude, Wanda, SparseGPT and ALPS at 50% and 2:4 on stories260K (16 windows of 128
// calibration tokens, seed 0; and three of them with 40 windows, three calibration batches) must keep
// these sha256 digests, recorded before the redesign. Floating-point
// results depend on the reduction order of OpenBLAS and the thread pool, so the run pins 2 threads (CI's
// cores) and uses the machine's best kernel variant, as the recording did (OPENBLAS_CORETYPE=Haswell).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backendInfo, parseRecipe, prune, setThreads } from '../lib/index.js';
import { fixturePath, sharedDir } from './helpers.js';
const RECORDED = {
    'magnitude 0.5': '7b0d1b3fabea8d74a5b0db95285d9acfb87b6b65fa007d0e32406727e96996f8',
    'magnitude 2:4': '581d5a67bff749a73817946b73bd7c80134ccc95ff19dba0e2b3c71d2f3c9510',
    'wanda 0.5': '1a14d5f134bed84c797a39df69bd8177ca1dc7276ec2ff1ef51c8469327f2358',
    'wanda 2:4': '0d6c4e85a6d10a6d53dc30994805ea0376b5a2ac9f976cc0e6b6a63c774e633f',
    'sparsegpt 0.5': '1f7a6f3097b2b604699a68db97840c58b539761263e86436e43c9aa3ae537530',
    'sparsegpt 2:4': 'd9ce8f7599c27437c435de3a8f1f23c08264753f9f4465acd169f5ae0684a547',
    'alps 0.5': '10cd500f1c791913e5d70faff5ba01bc4fa3cc3f22d97f2becc8be9e6e26cfac',
    'alps 2:4': 'e834141a563b1e2f71141fbd3d87d7a932b2c01956d96dd411f19b2fa0ea2341',
};
/** 40 windows of 128 tokens: three calibration batches, so statistics accumulate across batches. */
const RECORDED_MULTI_BATCH = {
    'wanda 0.5': 'd1f5e3e9c8c18db29f10b44d44023eb061ee5b94684a75a50fc2333043aaf698',
    'sparsegpt 0.5': '64049e369dc3c0eb44b361bca226f61d9805dbbc90397eda47479dcd1eeaeae5',
    'alps 2:4': '5132a9ad0dfd90af50a5b75a66b2fd5e0cf47fb15dc21cb5d6d8aa5511da2169',
};
describe('pruning results are byte-identical to the ones recorded before the framework redesign', function () {
    this.timeout(300_000);
    const work = mkdtempSync(join(tmpdir(), 'sparq-identity-'));
    const threads = backendInfo('cpu').threads;
    before(() => setThreads(2));
    after(() => {
        setThreads(threads);
        rmSync(work, { recursive: true, force: true });
    });
    for (const [nsamples, recorded] of [[16, RECORDED], [40, RECORDED_MULTI_BATCH]]) {
        for (const [key, digest] of Object.entries(recorded)) {
            const [method, sparsity] = key.split(' ');
            it(`${method} ${sparsity}, ${nsamples} windows`, async () => {
                const out = join(work, `${method}-${sparsity.replace(':', '-')}-${nsamples}`);
                await prune({ model: fixturePath('stories260K'), out, recipe: parseRecipe({ method, sparsity }), calibrationFile: join(sharedDir(), 'data', 'tinystories_calib.txt'), nsamples, seqLen: 128, seed: 0 });
                const actual = createHash('sha256').update(readFileSync(join(out, 'model.safetensors'))).digest('hex');
                assert.equal(actual, digest, `${key}: model.safetensors changed (sha256 ${actual})`);
            });
        }
    }
});
//# sourceMappingURL=identity.test.js.map
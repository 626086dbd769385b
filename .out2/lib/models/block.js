import { isMoeLayer } from './config.js';
/** Runs decoder block `layer` on hidden states h [N, hidden]; returns the block's output. */
export async function decoderBlock(config, ops, h, rows, layer) {
    const { heads, kvHeads, headDim } = config;
    const x = await ops.norm('attention', h);
    await ops.observe?.('attention.in', x);
    let q = ops.reshape(await ops.linear('q', x), [rows, heads, headDim]);
    let k = ops.reshape(await ops.linear('k', x), [rows, kvHeads, headDim]);
    const v = ops.reshape(await ops.linear('v', x), [rows, kvHeads, headDim]);
    if (config.qkNorm) {
        q = await ops.norm('q', q);
        k = await ops.norm('k', k);
    }
    if (config.learnedPositionOffset === undefined) {
        q = await ops.rope(q);
        k = await ops.rope(k);
    }
    const attended = ops.reshape(await ops.attention(q, k, v), [rows, heads * headDim]);
    await ops.observe?.('attention.out', attended);
    const afterAttention = await ops.residual(h, await ops.linear('o', attended));
    const y = await ops.norm('mlp', afterAttention);
    let mlp;
    if (config.moe && isMoeLayer(config, layer)) {
        await ops.observe?.('router', y);
        const routing = await ops.route(await ops.linear('router', y), config.moe);
        const outputs = [];
        for (let e = 0; e < routing.tokens.length; ++e) {
            if (routing.tokens[e].numel === 0) {
                outputs.push(undefined);
                continue;
            }
            const routed = await ops.gather(y, routing.tokens[e]);
            await ops.observe?.(`expert.${e}.in`, routed);
            const activated = await ops.siluMul(await ops.linear(`expert.${e}.gate`, routed), await ops.linear(`expert.${e}.up`, routed));
            await ops.observe?.(`expert.${e}.out`, activated);
            outputs.push(await ops.linear(`expert.${e}.down`, activated));
        }
        mlp = await ops.combine(routing, outputs, config.hiddenSize);
        if (config.moe.shared) {
            const activated = await ops.siluMul(await ops.linear('shared.gate', y), await ops.linear('shared.up', y));
            await ops.observe?.('shared.out', activated);
            let shared = await ops.linear('shared.down', activated);
            if (config.moe.shared.gated)
                shared = await ops.sigmoidScale(shared, await ops.linear('shared_expert_gate', y));
            mlp = await ops.residual(mlp, shared);
        }
    }
    else if (config.mlp === 'swiglu') {
        await ops.observe?.('mlp.in', y);
        const activated = await ops.siluMul(await ops.linear('gate', y), await ops.linear('up', y));
        await ops.observe?.('mlp.out', activated);
        mlp = await ops.linear('down', activated);
    }
    else {
        await ops.observe?.('mlp.in', y);
        const activated = await ops.activation(config.mlp, await ops.linear('fc1', y));
        await ops.observe?.('mlp.out', activated);
        mlp = await ops.linear('fc2', activated);
    }
    return ops.residual(afterAttention, mlp);
}
//# sourceMappingURL=block.js.map
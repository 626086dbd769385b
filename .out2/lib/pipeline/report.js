/** The totals over the report's linears. */
export function summarize(entries) {
    const size = (e) => e.shape[0] * e.shape[1];
    const compressed = entries.reduce((s, e) => s + size(e), 0);
    const pruned = entries.reduce((s, e) => s + Math.round(e.sparsity * size(e)), 0);
    const quantized = entries.filter((e) => e.bits !== undefined);
    const quantizedWeights = quantized.reduce((s, e) => s + size(e), 0);
    return {
        sparsity: compressed > 0 ? pruned / compressed : 0,
        prunedParameters: pruned,
        compressedParameters: compressed,
        compressedLinears: entries.length,
        quantizedLinears: quantized.length,
        bitsPerWeight: quantizedWeights > 0 ? quantized.reduce((s, e) => s + e.bitsPerWeight * size(e), 0) / quantizedWeights : null,
    };
}
//# sourceMappingURL=report.js.map
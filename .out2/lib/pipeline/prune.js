import { compressTuneAndPack } from './tune-scales.js';
/** Prunes (and, where the recipe says so, quantizes) a model into a dense Hugging Face folder. */
export function prune(options) {
    return compressTuneAndPack({ ...options, format: 'dense' });
}
/** Quantizes (and, where the recipe says so, prunes) a model; format compressed-tensors unless given. */
export function quantize(options) {
    return compressTuneAndPack({ ...options, format: options.format ?? 'compressed-tensors' });
}
//# sourceMappingURL=prune.js.map
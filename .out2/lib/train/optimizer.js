// Optimizers over named f32 parameters, updated in place.
//   sgd:   W ← W − lr·(∇W + wd·W)          (with wd = 0 exactly W ← W − lr·∇W, one f32 axpy)
//   adamw: PyTorch's AdamW: decoupled decay W ← W − lr·wd·W, then the bias-corrected Adam step.
// Gradient clipping scales every gradient by min(1, C / (‖∇‖₂ + 1e-6)) over all parameters together, as
// torch.nn.utils.clip_grad_norm_ does.
import { adamwStep } from '../tensor/nn-backward.js';
import { axpy, dot, scale } from '../tensor/ops.js';
import { Tensor } from '../tensor/tensor.js';
import { checkNumber, checkOneOf, invalid } from '../validate.js';
export const OPTIMIZERS = ['sgd', 'adamw'];
function checkBeta(param, value) {
    const beta = checkNumber(param, value, { min: 0 });
    if (beta >= 1)
        invalid(param, 'a number in [0, 1)', value);
    return beta;
}
export class Optimizer {
    kind;
    lr;
    weightDecay;
    beta1;
    beta2;
    eps;
    moments = new Map();
    steps = 0;
    constructor(options) {
        this.kind = checkOneOf('optimizer', options.kind, OPTIMIZERS);
        this.lr = checkNumber('lr', options.lr, { min: 0 });
        this.weightDecay = checkNumber('weightDecay', options.weightDecay ?? 0, { min: 0 });
        this.beta1 = checkBeta('beta1', options.beta1 ?? 0.9);
        this.beta2 = checkBeta('beta2', options.beta2 ?? 0.999);
        this.eps = checkNumber('eps', options.eps ?? 1e-8, { min: 0 });
    }
    /** One update of every parameter that has a gradient. */
    step(parameters, gradients) {
        this.steps += 1;
        for (const [name, param] of parameters) {
            const grad = gradients.get(name);
            if (!grad)
                continue;
            if (this.kind === 'sgd') {
                if (this.weightDecay > 0)
                    axpy(this.weightDecay, param, grad);
                axpy(-this.lr, grad, param);
                continue;
            }
            let state = this.moments.get(name);
            if (!state) {
                state = { m: Tensor.zeros(param.shape), v: Tensor.zeros(param.shape) };
                this.moments.set(name, state);
            }
            adamwStep(param, grad, state.m, state.v, { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay, step: this.steps });
        }
    }
}
/** Scales all gradients together so their global L2 norm is at most maxNorm; returns the norm before. */
export function clipGradients(gradients, maxNorm) {
    let squares = 0;
    for (const g of gradients.values())
        squares += dot(g, g);
    const norm = Math.sqrt(squares);
    const factor = maxNorm / (norm + 1e-6);
    if (factor < 1)
        for (const g of gradients.values())
            scale(g, factor, { inPlace: true });
    return norm;
}
//# sourceMappingURL=optimizer.js.map
"""PyTorch CPU baseline for bench/quantize.ts: GPTQ layer-wise quantization of a Llama, written from the
algorithm (Frantar et al. 2022; ../shared/methods.md) in the shape the reference implementation takes,
so the timing compares like with like: per decoder block, the dense block runs window by window while
each linear group's input is folded into a running-mean Hessian (torch_sparsegpt.py's capture); each of
the 7 linears is then quantized column by column in float32 with lazy B-column blocks, the grid of each
group of G inputs fitted from the original weights before the sweep (llm-compressor's "static" grids, as
sparq's default); finally the block is re-run with the quantized weights to give the next block's inputs.
Usage: python3 bench/torch_gptq.py MODEL_DIR CALIB.json THREADS [--bits 4] [--group-size 128]
         [--asym] [--block-size 128] [--damp 0.01]
CALIB.json: {"seq_len": L, "windows": [[ids...], ...]}. Prints one JSON line on stdout."""
import argparse
import json
import math
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_llama  # noqa: E402
from torch_sparsegpt import inverse_hessian_factor, layerwise  # noqa: E402


def grid(W, bits, group, symmetric):
    """Scale and zero point per row and group of `group` inputs, from the weights' range (0 included)."""
    rows, cols = W.shape
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    groups = math.ceil(cols / group)
    scale = torch.empty(rows, groups)
    zero = torch.zeros(rows, groups)
    for g in range(groups):
        part = W[:, g * group:(g + 1) * group]
        lo = part.min(dim=1).values.clamp(max=0)
        hi = part.max(dim=1).values.clamp(min=0)
        if symmetric:
            s = torch.maximum(-lo, hi) / ((qmax - qmin) / 2)
        else:
            s = (hi - lo) / (qmax - qmin)
        s[s == 0] = torch.finfo(torch.float32).eps
        scale[:, g] = s
        if not symmetric:
            zero[:, g] = torch.round((qmin - lo / s).clamp(qmin, qmax))
    return scale, zero, qmin, qmax


def gptq(W, H, bits, group, symmetric, damp, block_size):
    """Returns (quantized copy of W decoded to float32, damping attempts)."""
    W, H = W.clone(), H.clone()
    rows, cols = W.shape
    group = group or cols
    scale, zero, qmin, qmax = grid(W, bits, group, symmetric)
    dead = H.diagonal() == 0
    H.diagonal()[dead] = 1
    W[:, dead] = 0
    U, attempts = inverse_hessian_factor(H, damp)
    for start in range(0, cols, block_size):
        end = min(cols, start + block_size)
        W1 = W[:, start:end].clone()
        U1 = U[start:end, start:end]
        Q1 = torch.zeros_like(W1)
        E = torch.zeros_like(W1)
        for j in range(end - start):
            g = (start + j) // group
            w = W1[:, j]
            q = torch.round((w / scale[:, g] + zero[:, g]).clamp(qmin, qmax))
            decoded = (q - zero[:, g]) * scale[:, g]
            e = (w - decoded) / U1[j, j]
            W1[:, j:] -= e.unsqueeze(1) @ U1[j, j:].unsqueeze(0)
            Q1[:, j] = decoded
            E[:, j] = e
        W[:, start:end] = Q1
        W[:, end:] -= E @ U[start:end, end:]
    return W, attempts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("calib")
    ap.add_argument("threads", type=int)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=128)
    ap.add_argument("--asym", action="store_true")
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--damp", type=float, default=0.01)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = json.load(open(os.path.join(args.model, "config.json")))
    calib = json.load(open(args.calib))
    seq = calib["seq_len"]
    w = torch_llama.load(args.model)

    start = time.perf_counter()
    stages = {"forward": 0.0, "hessian": 0.0, "quantize": 0.0}
    linears = 0

    def quantize_linear(key, H):
        nonlocal linears
        w[key], _ = gptq(w[key], H, args.bits, args.group_size, not args.asym, args.damp, args.block_size)
        linears += 1

    layerwise(cfg, w, calib["windows"], seq, stages, "quantize", quantize_linear)
    print(json.dumps({"seconds": time.perf_counter() - start, "stages": stages, "linears": linears,
                      "secondsPerLinear": stages["quantize"] / linears,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "torch": torch.__version__, "threads": args.threads}))


if __name__ == "__main__":
    main()

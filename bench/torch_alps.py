"""PyTorch CPU baseline for bench/alps.ts: ALPS layer-wise pruning of a Llama in the reference
implementation's form (float64 eigendecomposition, explicit (Ĥ + ρI)⁻¹ rebuilt from it when ρ changes,
one matmul per ADMM iteration, top-k projection, masked CG), written from ../shared/methods.md, inside
the same block-sequential pipeline as bench/torch_sparsegpt.py. `--iterations N` runs exactly N ADMM
iterations per layer (the ρ schedule applies, the stopping rules do not), so both sides do equal work.
Usage: python3 bench/torch_alps.py MODEL_DIR CALIB.json THREADS --sparsity 0.7|2:4 --iterations 30
Prints one JSON line."""
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
from torch_sparsegpt import GROUPS, block_forward, rope_tables  # noqa: E402


def project(u, kept, n, m):
    """The largest |u| overall (unstructured) or the n largest of every m inputs of a row."""
    if m:
        groups = u.reshape(-1, m)
        keep = torch.zeros_like(groups, dtype=torch.bool)
        keep.scatter_(1, torch.topk(groups.abs(), n, dim=1).indices, True)
        return (groups * keep).reshape(u.shape), keep.reshape(u.shape)
    keep = torch.zeros(u.numel(), dtype=torch.bool)
    keep[torch.topk(u.abs().flatten(), kept).indices] = True
    keep = keep.reshape(u.shape)
    return u * keep, keep


def alps(W, H, sparsity, n, m, iterations, damp=0.01, rho=0.1, cg_iterations=10):
    rows, cols = W.shape
    H = H.clone()
    H += damp * torch.mean(torch.diag(H)) * torch.eye(cols)
    d = torch.sqrt(torch.diag(H)) + 1e-8
    Hh = H / d / d.reshape(-1, 1)
    Ws = W * d
    G = Ws @ Hh
    lam, Q = torch.linalg.eigh(Hh.double())
    inverse = lambda r: (Q @ ((1 / (lam + r)).reshape(-1, 1) * Q.T)).float()  # noqa: E731
    kept = rows * cols // m * n if m else rows * cols - round(sparsity * rows * cols)
    Z0, S0 = project(Ws, kept, n, m)
    Z, prev = Z0.clone(), S0
    V = torch.zeros_like(Ws)
    Hinv = inverse(rho)
    raised = False
    B = Ws
    for i in range(iterations):
        B = (G - V + rho * Z) @ Hinv
        Z, S = project(B + V / rho, kept, n, m)
        V = V + rho * (B - Z)
        if (i + 1) % 3 == 0:
            share = float((S != prev).sum()) / kept
            before = rho
            if share > 0.1:
                raised, rho = True, rho * 1.3
            elif share > 0.005:
                raised, rho = True, rho * 1.2
            elif share > 0:
                if raised:
                    rho *= 1.1
                else:
                    rho /= 5
                    Z, V = Z0.clone(), torch.zeros_like(Ws)
            elif not raised:
                rho /= 5
            rho = min(rho, 1e6)
            prev = S
            if rho != before:
                Hinv = inverse(rho)
    X, S = project(B, kept, n, m)
    # Jacobi-preconditioned CG per row on the fixed support.
    mask = S.float()
    inv_diag = 1 / torch.diag(Hh)
    R = (G - X @ Hh) * mask
    Zc = R * inv_diag
    P = Zc.clone()
    rz = (R * Zc).sum(1)
    for _ in range(cg_iterations):
        AP = P @ Hh
        alpha = rz / (P * AP).sum(1).clamp_min(1e-30)
        X = X + alpha.reshape(-1, 1) * P
        R = (R - alpha.reshape(-1, 1) * AP) * mask
        Zc = R * inv_diag
        rz_next = (R * Zc).sum(1)
        P = Zc + (rz_next / rz.clamp_min(1e-30)).reshape(-1, 1) * P
        rz = rz_next
    return X / d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("calib")
    ap.add_argument("threads", type=int)
    ap.add_argument("--sparsity", default="0.7")
    ap.add_argument("--iterations", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n, m, sparsity = 0, 0, 0.0
    if ":" in args.sparsity:
        n, m = (int(v) for v in args.sparsity.split(":"))
    else:
        sparsity = float(args.sparsity)
    cfg = json.load(open(os.path.join(args.model, "config.json")))
    calib = json.load(open(args.calib))
    w = torch_llama.load(args.model)
    start = time.perf_counter()
    stages = {"forward": 0.0, "prune": 0.0}
    cos, sin, mask = rope_tables(cfg, calib["seq_len"])
    with torch.no_grad():
        states = [w["model.embed_tokens.weight"][torch.tensor([ids])] for ids in calib["windows"]]
        for layer in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{layer}."
            hessians, counts = {}, {}

            def observe(group, x):
                x = x.reshape(-1, x.shape[-1])
                b, c = x.shape[0], counts.get(group, 0)
                h = hessians.get(group, torch.zeros(x.shape[1], x.shape[1]))
                x = math.sqrt(2 / (c + b)) * x
                hessians[group] = h * (c / (c + b)) + x.T @ x
                counts[group] = c + b

            t = time.perf_counter()
            for s in states:
                block_forward(cfg, w, p, s, cos, sin, mask, observe)
            stages["forward"] += time.perf_counter() - t
            t = time.perf_counter()
            for group, names in GROUPS.items():
                for name in names:
                    key = p + name + ".weight"
                    w[key] = alps(w[key], hessians[group], sparsity, n, m, args.iterations)
            stages["prune"] += time.perf_counter() - t
            t = time.perf_counter()
            states = [block_forward(cfg, w, p, s, cos, sin, mask) for s in states]
            stages["forward"] += time.perf_counter() - t
    print(json.dumps({"seconds": time.perf_counter() - start, "stages": stages,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "torch": torch.__version__, "threads": args.threads}))


if __name__ == "__main__":
    main()

"""PyTorch CPU baseline for bench/prune.ts: SparseGPT layer-wise pruning of a Llama, written from the
algorithm (../shared/methods.md) in the shape the reference implementations take, so the timing compares
like with like: per decoder block, the dense block runs window by window while each linear group's input
is folded into a running-mean Hessian; each of the 7 linears is then pruned column by column in float32
with lazy B-column blocks; finally the block is re-run with the pruned weights to give the next block's
inputs ("block" sequential mode). q/k/v and gate/up share one Hessian per group, computed once (the
references recompute it per linear, so this favours torch).
Usage: python3 bench/torch_sparsegpt.py MODEL_DIR CALIB.json THREADS [--sparsity 0.5|2:4]
         [--block-size 128] [--damp 0.01] [--out PRUNED.safetensors]
CALIB.json: {"seq_len": L, "windows": [[ids...], ...]}. Prints one JSON line on stdout."""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_llama  # noqa: E402

# Linear groups that read the same input, in the order the block computes them.
GROUPS = {
    "qkv": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
    "o": ["self_attn.o_proj"],
    "gateup": ["mlp.gate_proj", "mlp.up_proj"],
    "down": ["mlp.down_proj"],
}
MAX_DAMP_ATTEMPTS = 6  # damp, ×10, ×100, ... before giving up on a non-positive-definite H


def rope_tables(cfg, seq):
    heads = cfg["num_attention_heads"]
    d = cfg["hidden_size"] // heads
    inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, d, 2).float() / d))
    freqs = torch.outer(torch.arange(seq).float(), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin(), torch.full((seq, seq), float("-inf")).triu(1)


def block_forward(cfg, w, p, h, cos, sin, mask, observe=None):
    """One decoder block of torch_llama.forward (same math, line for line) on h [b, t, hidden];
    observe(group, x) sees the input of each linear group."""
    b, t, _ = h.shape
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", heads)
    d = cfg["hidden_size"] // heads
    eps = cfg["rms_norm_eps"]
    x = torch_llama.rms_norm(h, w[p + "input_layernorm.weight"], eps)
    if observe:
        observe("qkv", x)
    q = (x @ w[p + "self_attn.q_proj.weight"].T).view(b, t, heads, d).transpose(1, 2)
    k = (x @ w[p + "self_attn.k_proj.weight"].T).view(b, t, kv, d).transpose(1, 2)
    v = (x @ w[p + "self_attn.v_proj.weight"].T).view(b, t, kv, d).transpose(1, 2)
    q = q * cos + torch_llama.rotate_half(q) * sin
    k = k * cos + torch_llama.rotate_half(k) * sin
    k = k.repeat_interleave(heads // kv, dim=1)
    v = v.repeat_interleave(heads // kv, dim=1)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(d) + mask
    attn = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, heads * d)
    if observe:
        observe("o", attn)
    h = h + attn @ w[p + "self_attn.o_proj.weight"].T
    y = torch_llama.rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
    if observe:
        observe("gateup", y)
    act = torch.nn.functional.silu(y @ w[p + "mlp.gate_proj.weight"].T) * (y @ w[p + "mlp.up_proj.weight"].T)
    if observe:
        observe("down", act)
    return h + act @ w[p + "mlp.down_proj.weight"].T


def inverse_hessian_factor(H, damp):
    """U with UᵀU = (H + λI)⁻¹; λ grows ×10 while H + λI is not positive definite (methods.md)."""
    scale = H.diagonal().mean()
    for attempt in range(1, MAX_DAMP_ATTEMPTS + 1):
        # Both factorizations can fail on a near-singular H (e.g. fewer tokens than inputs and no damping).
        L, info = torch.linalg.cholesky_ex(H + damp * scale * torch.eye(H.shape[0]))
        if info == 0:
            U, info = torch.linalg.cholesky_ex(torch.cholesky_inverse(L), upper=True)
            if info == 0:
                return U, attempt
        damp = damp * 10 if damp > 0 else 1e-6
    raise RuntimeError(f"H ({H.shape[0]}x{H.shape[0]}) is not positive definite even with damp {damp / 10:g}")


def sparsegpt(W, H, sparsity, n, m, damp, block_size):
    """Returns (pruned copy of W [rows, cols], damping attempts); unstructured when m == 0, else N:M."""
    W, H = W.clone(), H.clone()
    rows, cols = W.shape
    dead = H.diagonal() == 0
    H.diagonal()[dead] = 1
    W[:, dead] = 0
    U, attempts = inverse_hessian_factor(H, damp)
    # N:M blocks start on a group boundary so no group straddles two blocks.
    block = max(m, block_size // m * m) if m else block_size
    # Unstructured: blocks share one running count so the matrix total is exactly round(p·rows·cols)
    # (equals round(p·rows·B) per block whenever that is an integer, e.g. p = 0.5, B = 128).
    pruned_before = lambda c: math.floor(sparsity * rows * c + 0.5)  # noqa: E731
    for start in range(0, cols, block):
        end = min(cols, start + block)
        W1 = W[:, start:end].clone()
        U1 = U[start:end, start:end]
        d = U1.diagonal()
        E = torch.zeros_like(W1)
        prune = torch.zeros_like(W1, dtype=torch.bool)
        if not m:
            count = pruned_before(end) - pruned_before(start)
            if count:
                scores = (W1 ** 2 / d.reshape(1, -1) ** 2).flatten()
                prune.view(-1)[torch.topk(scores, count, largest=False).indices] = True
        for j in range(end - start):
            if m and j % m == 0:
                # Scored on the already-updated weights, as the reference does.
                scores = W1[:, j:j + m] ** 2 / d[j:j + m].reshape(1, -1) ** 2
                prune.scatter_(1, j + torch.topk(scores, m - n, dim=1, largest=False).indices, True)
            w = W1[:, j]
            q = w.masked_fill(prune[:, j], 0)
            e = (w - q) / d[j]
            W1[:, j:] -= e.unsqueeze(1) @ U1[j, j:].unsqueeze(0)
            W1[:, j] = q
            E[:, j] = e
        W[:, start:end] = W1
        W[:, end:] -= E @ U[start:end, end:]
    return W, attempts


def layerwise(cfg, w, windows, seq, stages, stage, compress_linear):
    """The layer-wise loop of the reference implementations: per block, the dense block runs window by
    window while each linear group's input is folded into a running-mean Hessian (time under "hessian",
    the rest of the pass under "forward"); compress_linear(key, H) then replaces each of the 7 linears
    (time under `stage`); the block is re-run with them to give the next block's inputs ("forward")."""
    cos, sin, mask = rope_tables(cfg, seq)
    with torch.no_grad():
        t = time.perf_counter()
        states = [w["model.embed_tokens.weight"][torch.tensor([ids])] for ids in windows]
        stages["forward"] += time.perf_counter() - t
        for layer in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{layer}."
            hessians, counts = {}, {}

            def observe(group, x):
                # Running mean over tokens: after T tokens H = (2/T)·Σ xᵀx.
                t = time.perf_counter()
                x = x.reshape(-1, x.shape[-1])
                b = x.shape[0]
                if group not in hessians:
                    hessians[group], counts[group] = torch.zeros(x.shape[1], x.shape[1]), 0
                c = counts[group]
                hessians[group] *= c / (c + b)
                x = math.sqrt(2 / (c + b)) * x
                hessians[group] += x.T @ x
                counts[group] = c + b
                stages["hessian"] += time.perf_counter() - t

            t, hessian_before = time.perf_counter(), stages["hessian"]
            for s in states:
                block_forward(cfg, w, p, s, cos, sin, mask, observe)
            stages["forward"] += time.perf_counter() - t - (stages["hessian"] - hessian_before)

            t = time.perf_counter()
            for group, names in GROUPS.items():
                for name in names:
                    compress_linear(p + name + ".weight", hessians[group])
            stages[stage] += time.perf_counter() - t

            # The reference re-runs every block, the last one included.
            t = time.perf_counter()
            states = [block_forward(cfg, w, p, s, cos, sin, mask) for s in states]
            stages["forward"] += time.perf_counter() - t


def save_safetensors(path, tensors):
    """All tensors as F32, names sorted, header padded to 8 bytes (as the safetensors writer does)."""
    header, offset = {}, 0
    for name in sorted(tensors):
        size = tensors[name].numel() * 4
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for name in sorted(tensors):
            f.write(tensors[name].float().contiguous().numpy().tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("calib")
    ap.add_argument("threads", type=int)
    ap.add_argument("--sparsity", default="0.5", help='fraction of zeros (0.5) or "N:M" (2:4)')
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--damp", type=float, default=0.01)
    ap.add_argument("--out", help="write every tensor of the pruned model (F32) to this .safetensors file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if ":" in args.sparsity:
        n, m = (int(v) for v in args.sparsity.split(":"))
        if not 1 <= n < m:
            ap.error(f"N:M needs 1 <= N < M, got {args.sparsity}")
        sparsity = 1 - n / m
    else:
        n, m, sparsity = 0, 0, float(args.sparsity)
        if not 0 < sparsity < 1:
            ap.error(f"sparsity must be in (0, 1), got {args.sparsity}")
    cfg = json.load(open(os.path.join(args.model, "config.json")))
    calib = json.load(open(args.calib))
    seq = calib["seq_len"]
    if not calib["windows"] or any(len(ids) != seq for ids in calib["windows"]):
        sys.exit(f"{args.calib}: need at least one window, each of seq_len = {seq} ids")

    t0 = time.perf_counter()
    w = torch_llama.load(args.model)
    seconds_load = time.perf_counter() - t0
    if m:
        for name, t in w.items():
            if name.endswith("_proj.weight") and t.shape[1] % m:
                sys.exit(f"{name}: {t.shape[1]} inputs is not a multiple of M = {m}")

    start = time.perf_counter()
    stages = {"forward": 0.0, "hessian": 0.0, "prune": 0.0}
    zeros = total = 0
    damp_retries = 0

    def prune_linear(key, H):
        nonlocal zeros, total, damp_retries
        w[key], attempts = sparsegpt(w[key], H, sparsity, n, m, args.damp, args.block_size)
        damp_retries += attempts - 1
        zeros += int((w[key] == 0).sum())
        total += w[key].numel()

    layerwise(cfg, w, calib["windows"], seq, stages, "prune", prune_linear)
    seconds = time.perf_counter() - start
    if args.out:
        save_safetensors(args.out, w)
    print(json.dumps({"seconds": seconds, "seconds_load": seconds_load, "stages": stages,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "sparsity": zeros / total, "layers": cfg["num_hidden_layers"], "damp_retries": damp_retries,
                      "tokens": len(calib["windows"]) * seq, "torch": torch.__version__, "threads": args.threads}))


if __name__ == "__main__":
    main()

"""PyTorch CPU baseline for bench/prune.ts: SparseGPT layer-wise pruning of a Llama, written from the
algorithm (../shared/methods.md), in the shape the reference implementations take: per block, hooks
collect each linear's inputs window by window into a running-mean Hessian (full matmul), every linear
is pruned column by column in float32 with lazy 128-column blocks, then the block is re-run with the
pruned weights to give the next block's inputs. Sequential "block" mode; q/k/v and gate/up share a
Hessian (computed once per group, which favours torch over the references that recompute it).
Usage: python3 bench/torch_sparsegpt.py MODEL_DIR CALIB.json THREADS [--sparsity 0.5|2:4] [--damp 0.01]
CALIB.json: {"seq_len": L, "windows": [[ids...], ...]}. Prints one JSON line."""
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

LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
GROUP = {"self_attn.q_proj": "qkv", "self_attn.k_proj": "qkv", "self_attn.v_proj": "qkv", "self_attn.o_proj": "o",
         "mlp.gate_proj": "gateup", "mlp.up_proj": "gateup", "mlp.down_proj": "down"}


def block_forward(cfg, w, p, h, cos, sin, mask, observe=None):
    """One decoder block on h [b, t, hidden]; observe(group, input) sees each linear group's input."""
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


def sparsegpt(W, H, sparsity, n, m, damp, block_size):
    """Prunes W [rows, cols] in place; unstructured when m == 0, else keeps n of every m inputs."""
    W = W.clone()
    rows, cols = W.shape
    H = H.clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += damp * torch.mean(torch.diag(H)) * torch.eye(cols)
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    block = max(m, block_size // m * m) if m else block_size
    total = lambda c: round(sparsity * rows * c)  # noqa: E731
    for start in range(0, cols, block):
        end = min(cols, start + block)
        W1 = W[:, start:end].clone()
        U1 = U[start:end, start:end]
        E = torch.zeros_like(W1)
        prune = torch.zeros_like(W1, dtype=torch.bool)
        if not m:
            scores = (W1 ** 2 / torch.diag(U1).reshape(1, -1) ** 2).flatten()
            count = total(end) - total(start)
            if count:
                prune.view(-1)[torch.topk(scores, count, largest=False).indices] = True
        for j in range(end - start):
            if m and j % m == 0:
                scores = W1[:, j:j + m] ** 2 / torch.diag(U1)[j:j + m].reshape(1, -1) ** 2
                prune.scatter_(1, j + torch.topk(scores, m - n, dim=1, largest=False).indices, True)
            w = W1[:, j]
            q = w.clone()
            q[prune[:, j]] = 0
            e = (w - q) / U1[j, j]
            W1[:, j:] -= e.unsqueeze(1) @ U1[j, j:].unsqueeze(0)
            W1[:, j] = q
            E[:, j] = e
        W[:, start:end] = W1
        W[:, end:] -= E @ U[start:end, end:]
    return W


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("calib")
    ap.add_argument("threads", type=int)
    ap.add_argument("--sparsity", default="0.5")
    ap.add_argument("--damp", type=float, default=0.01)
    ap.add_argument("--block-size", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if ":" in args.sparsity:
        n, m = (int(v) for v in args.sparsity.split(":"))
        sparsity = 1 - n / m
    else:
        n, m, sparsity = 0, 0, float(args.sparsity)
    cfg = json.load(open(os.path.join(args.model, "config.json")))
    calib = json.load(open(args.calib))
    t0 = time.perf_counter()
    w = torch_llama.load(args.model)
    seconds_load = time.perf_counter() - t0
    start = time.perf_counter()
    stages = {"forward": 0.0, "hessian": 0.0, "prune": 0.0}
    seq = calib["seq_len"]
    heads = cfg["num_attention_heads"]
    d = cfg["hidden_size"] // heads
    inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, d, 2).float() / d))
    freqs = torch.outer(torch.arange(seq).float(), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.full((seq, seq), float("-inf")).triu(1)
    with torch.no_grad():
        states = [w["model.embed_tokens.weight"][torch.tensor([ids])] for ids in calib["windows"]]
        zeros = total = 0
        for layer in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{layer}."
            hessians, counts = {}, {}

            def observe(group, x):
                t = time.perf_counter()
                x = x.reshape(-1, x.shape[-1])
                b = x.shape[0]
                if group not in hessians:
                    hessians[group] = torch.zeros(x.shape[1], x.shape[1])
                    counts[group] = 0
                c = counts[group]
                hessians[group] *= c / (c + b)
                x = math.sqrt(2 / (c + b)) * x
                hessians[group] += x.T @ x
                counts[group] = c + b
                stages["hessian"] += time.perf_counter() - t

            t = time.perf_counter()
            for s in states:
                block_forward(cfg, w, p, s, cos, sin, mask, observe)
            stages["forward"] += time.perf_counter() - t - 0
            t = time.perf_counter()
            for name in LINEARS:
                key = p + name + ".weight"
                w[key] = sparsegpt(w[key], hessians[GROUP[name]], sparsity, n, m, args.damp, args.block_size)
                zeros += int((w[key] == 0).sum())
                total += w[key].numel()
            stages["prune"] += time.perf_counter() - t
            t = time.perf_counter()
            states = [block_forward(cfg, w, p, s, cos, sin, mask) for s in states]
            stages["forward"] += time.perf_counter() - t
    stages["forward"] -= stages["hessian"]
    print(json.dumps({"seconds": time.perf_counter() - start, "seconds_load": seconds_load, "stages": stages,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "sparsity": zeros / total,
                      "layers": cfg["num_hidden_layers"], "torch": torch.__version__, "threads": args.threads}))


if __name__ == "__main__":
    main()

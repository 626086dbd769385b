"""PyTorch CPU baseline for bench/forward.ts: the Hugging Face Llama forward written out in plain torch
(no transformers), reading the same safetensors folder, timing the same windows on the same threads.
Usage: python3 bench/torch_llama.py MODEL_DIR WINDOWS SEQ_LEN THREADS  -> prints one JSON line."""
import json
import math
import struct
import sys
import time

import numpy as np
import torch

DTYPES = {"F32": np.float32, "F16": np.float16}


def load(model_dir):
    import os

    index = os.path.join(model_dir, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    tensors = {}
    for name in files:
        with open(os.path.join(model_dir, name), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
            data = f.read()
        for key, info in header.items():
            if key == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            array = np.frombuffer(data[begin:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
            tensors[key] = torch.from_numpy(array.astype(np.float32))
    return tensors


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def forward(cfg, w, ids):
    b, t = ids.shape
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", heads)
    d = cfg["hidden_size"] // heads
    eps = cfg["rms_norm_eps"]
    inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, d, 2).float() / d))
    freqs = torch.outer(torch.arange(t).float(), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.full((t, t), float("-inf")).triu(1)
    h = w["model.embed_tokens.weight"][ids]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        x = rms_norm(h, w[p + "input_layernorm.weight"], eps)
        q = (x @ w[p + "self_attn.q_proj.weight"].T).view(b, t, heads, d).transpose(1, 2)
        k = (x @ w[p + "self_attn.k_proj.weight"].T).view(b, t, kv, d).transpose(1, 2)
        v = (x @ w[p + "self_attn.v_proj.weight"].T).view(b, t, kv, d).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(heads // kv, dim=1)
        v = v.repeat_interleave(heads // kv, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(d) + mask
        attn = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, heads * d)
        h = h + attn @ w[p + "self_attn.o_proj.weight"].T
        y = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
        gate = torch.nn.functional.silu(y @ w[p + "mlp.gate_proj.weight"].T)
        h = h + (gate * (y @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return rms_norm(h, w["model.norm.weight"], eps) @ head.T


def main():
    model_dir, windows, seq_len, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    cfg = json.load(open(f"{model_dir}/config.json"))
    weights = load(model_dir)
    ids = torch.arange(windows * seq_len).remainder(cfg["vocab_size"]).view(windows, seq_len)
    with torch.no_grad():
        forward(cfg, weights, ids[:1, :16])  # warm-up
        start = time.perf_counter()
        logits = forward(cfg, weights, ids)
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "tokens": windows * seq_len, "tokensPerSecond": windows * seq_len / seconds,
                      "torch": torch.__version__, "threads": threads, "checksum": float(logits[0, -1, :8].sum())}))


if __name__ == "__main__":
    main()

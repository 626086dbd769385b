"""PyTorch CPU baseline for bench/forward.ts: the Hugging Face Llama forward written out in plain torch
(no transformers), reading the same safetensors folder, timing the same windows on the same threads.
bench/torch_train.py imports its loader and forward.
Usage: python3 bench/torch_llama.py MODEL_DIR WINDOWS SEQ_LEN THREADS  -> prints one JSON line."""
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

def read_safetensors(path):
    """name -> float32 numpy array (integer tensors keep their integer type)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw, dtype, shape = data[begin:end], info["dtype"], info["shape"]
        if dtype == "BF16":
            # bf16 is the top half of an f32: widen the bits and reinterpret.
            array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif dtype in ("F32", "F16", "F64"):
            array = np.frombuffer(raw, dtype={"F32": "<f4", "F16": "<f2", "F64": "<f8"}[dtype]).astype(np.float32)
        elif dtype in ("I32", "I64", "I16", "I8", "U8"):
            array = np.frombuffer(raw, dtype={"I32": "<i4", "I64": "<i8", "I16": "<i2", "I8": "i1", "U8": "u1"}[dtype])
        else:
            raise ValueError(f"{path}: tensor {key} has unsupported dtype {dtype}")
        out[key] = array.reshape(shape)
    return out


def load(model_dir, requires_grad=False):
    """The folder's weights as float32 tensors (leaves with requires_grad for training)."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    params = {}
    for name in files:
        for key, array in read_safetensors(os.path.join(model_dir, name)).items():
            params[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).requires_grad_(requires_grad)
    return params


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def forward(cfg, w, ids):
    """Logits [B, T, V] of the Hugging Face LlamaForCausalLM forward, in float32."""
    b, t = ids.shape
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    d = cfg.get("head_dim") or cfg["hidden_size"] // heads
    eps = cfg.get("rms_norm_eps", 1e-6)
    inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    freqs = torch.outer(torch.arange(t).float(), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    future = torch.ones(t, t, dtype=torch.bool).triu(1)
    scale = 1.0 / math.sqrt(d)
    h = F.embedding(ids, w["model.embed_tokens.weight"])
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        x = rms_norm(h, w[p + "input_layernorm.weight"], eps)
        q = F.linear(x, w[p + "self_attn.q_proj.weight"], w.get(p + "self_attn.q_proj.bias"))
        k = F.linear(x, w[p + "self_attn.k_proj.weight"], w.get(p + "self_attn.k_proj.bias"))
        v = F.linear(x, w[p + "self_attn.v_proj.weight"], w.get(p + "self_attn.v_proj.bias"))
        q = q.view(b, t, heads, d).transpose(1, 2)
        k = k.view(b, t, kv, d).transpose(1, 2)
        v = v.view(b, t, kv, d).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # GQA: query head j reads kv head j // (heads / kv), as transformers' repeat_kv does.
        k = k.repeat_interleave(heads // kv, dim=1)
        v = v.repeat_interleave(heads // kv, dim=1)
        scores = (q @ k.transpose(-1, -2)) * scale
        probs = scores.masked_fill(future, float("-inf")).softmax(-1)
        attn = (probs @ v).transpose(1, 2).reshape(b, t, heads * d)
        h = h + F.linear(attn, w[p + "self_attn.o_proj.weight"], w.get(p + "self_attn.o_proj.bias"))
        y = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
        gate = F.silu(F.linear(y, w[p + "mlp.gate_proj.weight"]))
        h = h + F.linear(gate * F.linear(y, w[p + "mlp.up_proj.weight"]), w[p + "mlp.down_proj.weight"])
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return F.linear(rms_norm(h, w["model.norm.weight"], eps), head)


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

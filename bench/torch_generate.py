"""PyTorch CPU baseline for bench/generate.ts: KV-cached greedy decoding of a Llama safetensors folder in
plain torch (no transformers), the forward of bench/torch_llama.py (its rms_norm and rotate_half) split
into a prefill over the prompt and one-token steps against cached keys and values.

Usage: python3 bench/torch_generate.py MODEL_DIR PROMPT_IDS NEW_TOKENS THREADS f32|bf16
  PROMPT_IDS: comma-separated token ids. f32: every weight in float32; bf16: the linears, embedding and
  head kept in bfloat16 as stored (the folder must be bf16), activations converted to bf16 for each linear
  and back; norms, rotary and attention in float32.
Prints one JSON line: promptTokens, generatedTokens, prefillSeconds, decodeSeconds, prefillTokensPerSecond,
decodeTokensPerSecond ((generated - 1) / decodeSeconds, as sparq reports it), tokens, peakRssBytes
(getrusage ru_maxrss), loadSeconds, torch, threads.

Tensors are read with readinto straight into torch tensors of their final dtype, so loading never holds a
file-sized buffer next to the weights (torch_llama.load reads whole files, which would double the peak)."""
import json
import math
import os
import resource
import struct
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_llama import rms_norm, rotate_half  # noqa: E402

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def load(model_dir, compute):
    """name -> tensor: float32 for f32 compute; for bf16, 2-D weights stay bf16, vectors become float32."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    params = {}
    for name in files:
        with open(os.path.join(model_dir, name), "rb", buffering=0) as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
            base = 8 + n
            for key, info in sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0]):
                if info["dtype"] not in DTYPES:
                    raise ValueError(f"{name}: tensor {key} has unsupported dtype {info['dtype']}")
                begin, end = info["data_offsets"]
                t = torch.empty(info["shape"], dtype=DTYPES[info["dtype"]])
                f.seek(base + begin)
                view = memoryview(t.view(-1).view(torch.uint8).numpy())
                got = 0
                while got < end - begin:
                    got += f.readinto(view[got:])
                wanted = torch.bfloat16 if compute == "bf16" and t.dim() == 2 else torch.float32
                params[key] = t if t.dtype == wanted else t.to(wanted)
    return params


def linear(x, w):
    return F.linear(x.to(w.dtype), w).float() if w.dtype != torch.float32 else F.linear(x, w)


class Decoder:
    def __init__(self, cfg, w, max_tokens):
        self.cfg, self.w = cfg, w
        self.heads = cfg["num_attention_heads"]
        self.kv = cfg.get("num_key_value_heads") or self.heads
        self.d = cfg.get("head_dim") or cfg["hidden_size"] // self.heads
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, self.d, 2, dtype=torch.int64).float() / self.d))
        emb = torch.cat((torch.outer(torch.arange(max_tokens).float(), inv),) * 2, dim=-1)
        self.cos, self.sin = emb.cos(), emb.sin()
        layers = cfg["num_hidden_layers"]
        self.keys = torch.zeros(layers, self.kv, max_tokens, self.d)
        self.values = torch.zeros(layers, self.kv, max_tokens, self.d)
        self.length = 0

    def step(self, ids):
        """Appends ids [T] at positions length … length+T−1; returns the logits of the last one."""
        w, t, s0 = self.w, ids.shape[0], self.length
        s1 = s0 + t
        cos, sin = self.cos[s0:s1], self.sin[s0:s1]
        future = torch.ones(t, s1, dtype=torch.bool).triu(s0 + 1)  # query i sees keys ≤ s0 + i
        group = self.heads // self.kv
        h = F.embedding(ids, w["model.embed_tokens.weight"]).float()
        for layer in range(self.cfg["num_hidden_layers"]):
            p = f"model.layers.{layer}."
            x = rms_norm(h, w[p + "input_layernorm.weight"], self.eps)
            q = linear(x, w[p + "self_attn.q_proj.weight"]).view(t, self.heads, self.d).transpose(0, 1)
            k = linear(x, w[p + "self_attn.k_proj.weight"]).view(t, self.kv, self.d).transpose(0, 1)
            v = linear(x, w[p + "self_attn.v_proj.weight"]).view(t, self.kv, self.d).transpose(0, 1)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            self.keys[layer, :, s0:s1] = k
            self.values[layer, :, s0:s1] = v
            # GQA without repeating the cache: query heads grouped under their KV head.
            qg = q.reshape(self.kv, group * t, self.d)
            scores = (qg @ self.keys[layer, :, :s1].transpose(-1, -2)).view(self.kv, group, t, s1) / math.sqrt(self.d)
            probs = scores.masked_fill(future, float("-inf")).softmax(-1).view(self.kv, group * t, s1)
            attn = (probs @ self.values[layer, :, :s1]).view(self.heads, t, self.d).transpose(0, 1).reshape(t, self.heads * self.d)
            h = h + linear(attn, w[p + "self_attn.o_proj.weight"])
            y = rms_norm(h, w[p + "post_attention_layernorm.weight"], self.eps)
            h = h + linear(F.silu(linear(y, w[p + "mlp.gate_proj.weight"])) * linear(y, w[p + "mlp.up_proj.weight"]), w[p + "mlp.down_proj.weight"])
        self.length = s1
        head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
        return linear(rms_norm(h[-1:], w["model.norm.weight"], self.eps), head)[0]


def main():
    model_dir, prompt, new_tokens, threads, compute = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    torch.set_num_threads(threads)
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    start = time.perf_counter()
    w = load(model_dir, compute)
    load_seconds = time.perf_counter() - start
    ids = torch.tensor([int(i) for i in prompt.split(",")], dtype=torch.int64)
    decoder = Decoder(cfg, w, ids.shape[0] + new_tokens)
    tokens = []
    with torch.no_grad():
        start = time.perf_counter()
        tokens.append(int(decoder.step(ids).argmax()))
        prefill = time.perf_counter() - start
        start = time.perf_counter()
        while len(tokens) < new_tokens:
            tokens.append(int(decoder.step(torch.tensor(tokens[-1:])).argmax()))
        decode = time.perf_counter() - start
    print(json.dumps({
        "promptTokens": ids.shape[0], "generatedTokens": len(tokens), "prefillSeconds": prefill, "decodeSeconds": decode,
        "prefillTokensPerSecond": ids.shape[0] / prefill, "decodeTokensPerSecond": (len(tokens) - 1) / decode, "tokens": tokens,
        "peakRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "loadSeconds": load_seconds,
        "torch": torch.__version__, "threads": threads, "compute": compute,
    }))


if __name__ == "__main__":
    main()

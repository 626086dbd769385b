"""PyTorch CPU baseline for bench/train.ts: Hugging Face Llama training steps written out in plain torch
(no transformers), reading the same safetensors folder, on the same token windows, batch and threads.
Usage:
  python3 bench/torch_train.py MODEL_DIR --tokens TOKENS.json --seq-len T --batch B --steps S --warmup W
      --threads N --optimizer adamw|sgd --lr LR [--weight-decay WD]          -> prints one JSON line
  python3 bench/torch_train.py MODEL_DIR --check-golden [--threads N]         -> loss/gradient diffs vs golden
Windows are cut as sparq's trainer and eval protocol cut them: window i is tokens[i*T : (i+1)*T] (T tokens,
T-1 predictions), taken in order, B windows a step (wrapping around at the end); a step's loss is the mean
next-token NLL over all B*(T-1) predictions; the first W steps are warm-up and left out of tokens/s."""
import argparse
import json
import os
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F

from torch_llama import forward, load, read_safetensors


def loss_of(cfg, w, windows):
    """Mean next-token NLL over all predictions of windows [B, T]."""
    logits = forward(cfg, w, windows[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))


def check_golden(model_dir, cfg, params):
    """Loss and gradients (golden.safetensors with grad.* tensors: logits of ids[:, :-1] against ids[:, 1:]) or
    logits alone (a golden with only input_ids and logits: logits of the whole input_ids) against the golden."""
    golden = read_safetensors(os.path.join(model_dir, "golden.safetensors"))
    meta = json.load(open(os.path.join(model_dir, "golden.json")))
    ids = torch.from_numpy(golden["input_ids"].astype(np.int64))
    if not any(k.startswith("grad.") for k in golden):
        with torch.no_grad():
            logits = forward(cfg, params, ids)
        ref = torch.from_numpy(golden["logits"])
        print(json.dumps({"mode": "logits", "tokens": ids.numel(), "logits_max_abs_diff": float((logits - ref).abs().max()),
                          "max_abs_golden": float(ref.abs().max())}))
        return
    loss = loss_of(cfg, params, ids)
    loss.backward()
    grads, worst = {}, 0.0
    for key, p in params.items():
        ref = golden.get("grad." + key)
        if ref is None:
            grads[key] = "no golden gradient"
            continue
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        diff = float((g - torch.from_numpy(ref)).abs().max())
        grads[key] = {"max_abs_diff": diff, "max_abs_golden": float(np.abs(ref).max())}
        worst = max(worst, diff)
    missing = [k[5:] for k in golden if k.startswith("grad.") and k[5:] not in params]
    report = {"mode": "loss+grads", "loss": float(loss), "max_grad_abs_diff": worst, "grads": grads, "missing_params": missing}
    if "loss" in meta:
        report.update(golden_loss=meta["loss"], loss_abs_diff=abs(float(loss) - meta["loss"]))
    if "logits" in golden:
        with torch.no_grad():
            logits = forward(cfg, params, ids[:, :-1])
        report["logits_max_abs_diff"] = float((logits - torch.from_numpy(golden["logits"])).abs().max())
    print(json.dumps(report))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--tokens")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--check-golden", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    cfg = json.load(open(os.path.join(args.model_dir, "config.json")))
    params = load(args.model_dir, requires_grad=True)
    if cfg.get("tie_word_embeddings"):
        params.pop("lm_head.weight", None)  # tied: the head is embed_tokens itself
    if args.check_golden:
        check_golden(args.model_dir, cfg, params)
        return
    if not args.tokens:
        ap.error("--tokens is required (or --check-golden)")
    if not 0 <= args.warmup < args.steps:
        ap.error("need 0 <= warmup < steps")

    T, B = args.seq_len, args.batch
    tokens = torch.tensor(json.load(open(args.tokens)), dtype=torch.int64)
    count = tokens.numel() // T
    if count < 1:
        raise SystemExit(f"{args.tokens}: {tokens.numel()} tokens is less than one window of {T}")
    if int(tokens.max()) >= cfg["vocab_size"] or int(tokens.min()) < 0:
        raise SystemExit(f"{args.tokens}: token ids outside [0, {cfg['vocab_size']})")

    trainable = list(params.values())
    if args.optimizer == "adamw":
        opt = torch.optim.AdamW(trainable, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=args.weight_decay)
    else:
        opt = torch.optim.SGD(trainable, lr=args.lr, weight_decay=args.weight_decay)

    losses, step_seconds, cursor = [], [], 0
    for _ in range(args.steps):
        start = time.perf_counter()
        rows = [(cursor + j) % count for j in range(B)]
        cursor = (cursor + B) % count
        batch = torch.stack([tokens[r * T: (r + 1) * T] for r in rows])
        opt.zero_grad(set_to_none=True)
        loss = loss_of(cfg, params, batch)
        loss.backward()
        opt.step()
        losses.append(float(loss))
        step_seconds.append(time.perf_counter() - start)

    timed = sum(step_seconds[args.warmup:])
    print(json.dumps({"tokens_per_second": B * (T - 1) * (args.steps - args.warmup) / timed, "step_seconds": step_seconds,
                      "losses": losses, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "threads": args.threads, "torch": torch.__version__, "batch": B, "seq_len": T,
                      "steps": args.steps, "warmup": args.warmup, "optimizer": args.optimizer, "lr": args.lr}))


if __name__ == "__main__":
    main()

"""PyTorch CPU baseline for bench/elsa.ts: Elsa's ADMM step on a Hugging Face Llama written out in plain torch
(the forward of torch_llama.py), on the same windows, batch and threads as sparq.
Usage:
  python3 bench/torch_elsa.py MODEL_DIR --windows WINDOWS.json --sparsity P --steps S --warmup W --threads N
      [--lr LR --lmda L --interval K --grad-clip C]                            -> prints one JSON line
WINDOWS.json: {"seq_len": T, "windows": [[...T ids...], ...]}, batch = len(windows) / steps, taken in order.
Each step: loss.backward(); clip the task gradient by global norm; for every decoder-block linear weight
p.grad += λ(p − z + u); Adam step on every parameter; every K steps z = P(p + u) (keep the largest |·| per
matrix), u += p − z. The first W steps are warm-up and left out of steps/s."""
import argparse
import json
import resource
import time

import torch
import torch.nn.functional as F

from torch_llama import forward, load

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def project(t, sparsity):
    """Keep the round((1 − p)·numel) largest |t| of the matrix, zero the rest."""
    keep = t.numel() - round(sparsity * t.numel())
    flat = t.abs().flatten()
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[torch.topk(flat, keep, sorted=False).indices] = True
    return t * mask.view_as(t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--windows", required=True)
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lmda", type=float, default=0.5)
    ap.add_argument("--interval", type=int, default=16)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    cfg = json.load(open(f"{args.model_dir}/config.json"))
    params = load(args.model_dir, requires_grad=True)
    if cfg.get("tie_word_embeddings"):
        params.pop("lm_head.weight", None)
    data = json.load(open(args.windows))
    windows = torch.tensor(data["windows"], dtype=torch.int64)
    batch = windows.shape[0] // args.steps
    constrained = [k for k in params if k.endswith(".weight") and k.split(".")[-2] in LINEARS]
    with torch.no_grad():
        z = {k: project(params[k].detach(), args.sparsity) for k in constrained}
        u = {k: torch.zeros_like(params[k]) for k in constrained}
    trainable = list(params.values())
    opt = torch.optim.Adam(trainable, lr=args.lr, betas=(0.9, 0.999), eps=1e-8)

    losses, step_seconds, violations = [], [], []
    for step in range(args.steps):
        start = time.perf_counter()
        ids = windows[step * batch:(step + 1) * batch]
        opt.zero_grad(set_to_none=True)
        logits = forward(cfg, params, ids[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, args.grad_clip)
        with torch.no_grad():
            for k in constrained:
                params[k].grad.add_(args.lmda * (params[k] - z[k] + u[k]))
        opt.step()
        if (step + 1) % args.interval == 0:
            with torch.no_grad():
                diff = norm = 0.0
                for k in constrained:
                    z[k] = project(params[k] + u[k], args.sparsity)
                    u[k] += params[k] - z[k]
                    diff += float((params[k] - z[k]).pow(2).sum())
                    norm += float(params[k].pow(2).sum())
                violations.append((diff / norm) ** 0.5)
        losses.append(float(loss))
        step_seconds.append(time.perf_counter() - start)

    timed = sum(step_seconds[args.warmup:])
    print(json.dumps({"steps_per_second": (args.steps - args.warmup) / timed, "step_seconds": step_seconds, "losses": losses,
                      "violations": violations, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "threads": args.threads, "torch": torch.__version__, "batch": batch, "seq_len": windows.shape[1],
                      "steps": args.steps, "warmup": args.warmup}))


if __name__ == "__main__":
    main()

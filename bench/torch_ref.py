#!/usr/bin/python3
"""The same training step as `distill bench train`, in PyTorch (Debian's python3-torch, CPU).

Llama/Qwen2-style decoder with the same shapes and the same defaults as distill_config_default():
RMSNorm (eps 1e-5), RoPE (theta 1e4), grouped-query attention, SwiGLU, tied embeddings, no
biases; weighted cross-entropy on random tokens; AdamW (lr 1e-4, wd 0.1) with grad clipping 1.0.
Prints one JSON line like distill's, and with --distill FILE (a JSON line written by `distill
bench train`) also the ratio distill / PyTorch. --precision bf16 runs the forward and the loss under
torch.autocast("cpu", dtype=torch.bfloat16) (matmuls in BF16 through oneDNN, which uses
avx512_bf16 where the CPU has it; master weights, gradients and AdamW stay FP32), the usual way to
train in mixed precision on a CPU with PyTorch.

  /usr/bin/python3 bench/torch_ref.py --vocab 4096 --dim 256 --layers 4 --heads 4 --kv-heads 4 \
      --ffn 768 --seq 256 --batch 8 --steps 10 --threads 1 [--distill build/bench/S_t1.json]
"""
import argparse
import json
import math
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(T, hs, theta):
    inv = 1.0 / (theta ** (torch.arange(0, hs, 2, dtype=torch.float32) / hs))
    ang = torch.outer(torch.arange(T, dtype=torch.float32), inv)
    return torch.cos(ang), torch.sin(ang)


def apply_rope(x, cos, sin):
    # x (B, nh, T, hs); Hugging Face Llama's rotate_half convention
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    c = torch.cat([cos, cos], -1)
    s = torch.cat([sin, sin], -1)
    return x * c + torch.cat([-x2, x1], -1) * s


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        C, self.nh, self.nkv = a.dim, a.heads, a.kv_heads
        self.hs = C // a.heads
        self.attn_norm = RMSNorm(C, 1e-5)
        self.wq = nn.Linear(C, self.nh * self.hs, bias=False)
        self.wk = nn.Linear(C, self.nkv * self.hs, bias=False)
        self.wv = nn.Linear(C, self.nkv * self.hs, bias=False)
        self.wo = nn.Linear(self.nh * self.hs, C, bias=False)
        self.ffn_norm = RMSNorm(C, 1e-5)
        self.w_gate = nn.Linear(C, a.ffn, bias=False)
        self.w_up = nn.Linear(C, a.ffn, bias=False)
        self.w_down = nn.Linear(a.ffn, C, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, C = x.shape
        h = self.attn_norm(x)
        q = self.wq(h).view(B, T, self.nh, self.hs).transpose(1, 2)
        k = self.wk(h).view(B, T, self.nkv, self.hs).transpose(1, 2)
        v = self.wv(h).view(B, T, self.nkv, self.hs).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.nkv != self.nh:
            k = k.repeat_interleave(self.nh // self.nkv, dim=1)
            v = v.repeat_interleave(self.nh // self.nkv, dim=1)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(self.hs) + mask
        y = F.softmax(att, dim=-1) @ v
        x = x + self.wo(y.transpose(1, 2).reshape(B, T, C))
        h = self.ffn_norm(x)
        return x + self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))


class Model(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.emb = nn.Embedding(a.vocab, a.dim)
        self.blocks = nn.ModuleList([Block(a) for _ in range(a.layers)])
        self.norm = RMSNorm(a.dim, 1e-5)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)
        cos, sin = rope_tables(a.seq, a.dim // a.heads, 1e4)
        self.register_buffer("cos", cos)
        self.register_buffer("sin", sin)
        self.register_buffer("mask", torch.full((a.seq, a.seq), float("-inf")).triu(1))

    def forward(self, tokens):
        x = self.emb(tokens)
        for b in self.blocks:
            x = b(x, self.cos, self.sin, self.mask)
        return self.norm(x) @ self.emb.weight.t()   # tied LM head


def main():
    ap = argparse.ArgumentParser()
    for k, v in [("vocab", 4096), ("dim", 256), ("layers", 4), ("heads", 4), ("kv-heads", 4), ("ffn", 768),
                 ("seq", 256), ("batch", 8), ("steps", 10), ("warmup", 2), ("threads", 1)]:
        ap.add_argument("--" + k, type=int, default=v)
    ap.add_argument("--distill", help="file with the JSON line of `distill bench train` on the same shapes")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: forward and loss under torch.autocast('cpu', dtype=torch.bfloat16)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Model(a)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    times, cpu = [], 0.0
    for step in range(a.warmup + a.steps):
        tokens = torch.randint(0, a.vocab, (a.batch, a.seq))
        targets = torch.randint(0, a.vocab, (a.batch, a.seq))
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            logits = model(tokens)
            loss = F.cross_entropy(logits.view(-1, a.vocab), targets.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
            cpu += time.process_time() - c0
    med = statistics.median(times)
    ntok = a.batch * a.seq
    out = {"bench": "train_torch", "torch": torch.__version__, "threads": a.threads, "precision": a.precision,
           "vocab": a.vocab, "dim": a.dim, "layers": a.layers, "heads": a.heads, "kv_heads": a.kv_heads,
           "ffn": a.ffn, "seq": a.seq, "batch": a.batch, "steps": a.steps,
           "tokens_per_s": round(ntok / med, 1),
           "tokens_per_s_cpu": round(ntok * a.steps / (cpu / a.threads), 1),
           "step_ms": round(1e3 * med, 2),
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)}
    if a.distill:
        try:
            with open(a.distill) as f:
                d = json.loads(f.read().strip().splitlines()[-1])
            out["distill_tokens_per_s"] = d["tokens_per_s"]
            out["ratio_distill_over_torch"] = round(d["tokens_per_s"] / out["tokens_per_s"], 2)
            if "tokens_per_s_cpu" in d:
                out["ratio_cpu_time"] = round(d["tokens_per_s_cpu"] / out["tokens_per_s_cpu"], 2)
        except (OSError, ValueError, KeyError, IndexError) as e:
            print("torch_ref.py: cannot read %s: %s" % (a.distill, e), file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

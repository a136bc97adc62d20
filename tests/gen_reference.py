#!/usr/bin/python3
"""PyTorch reference for the model tests (tests/test_model_torch.c).

Builds tiny Llama- and Qwen2-style decoders *in PyTorch* (float64, autograd; the layer
semantics of Hugging Face's modeling_llama.py / modeling_qwen2.py: RMSNorm, rotate_half RoPE,
repeat_kv grouped-query attention, SwiGLU MLP, optional q/k/v bias, tied or untied LM head),
with weights drawn here from torch's own RNG, and writes for each:

  the config, every weight (by its HF name), a batch (padding, a loss mask, optionally packed
  segments with restarting positions and fractional loss weights), the logits, the weighted
  cross-entropy loss normalised by the sum of weights, token accuracy, mean entropy, every
  gradient, and then the loss, gradient norm and lr of each of 10 AdamW steps
  (torch.optim.AdamW, decoupled decay on matrices only, clip_grad_norm_, linear warmup + cosine
  decay to a floor) plus the final weights.

Nothing here uses the C code. Run with Debian's python3-torch:  /usr/bin/python3 tests/gen_reference.py
(or `make fixtures`). Output: tests/fixtures/model_llama.bin, tests/fixtures/model_qwen.bin

Fixture format (little-endian): magic b"DSTLFIX1", u32 entry count, then per entry:
u32 name length, name bytes, u32 dtype (0 float32, 1 int32, 2 float64), u32 ndim, u32 dims[ndim],
the data row-major.
"""
import math
import os
import struct
import sys

import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope(x, pos, theta):
    # x (B, H, T, HS), pos (B, T)
    hs = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs))
    freqs = pos.to(torch.float64)[..., None] * inv_freq  # (B, T, HS/2)
    emb = torch.cat((freqs, freqs), dim=-1)[:, None, :, :]
    return x * emb.cos() + rotate_half(x) * emb.sin()


def forward(cfg, W, tokens, pos, seg):
    V, C, L, NH, NKV, F, bias, tie, theta, eps = cfg
    B, T = tokens.shape
    HS = C // NH
    x = W["model.embed_tokens.weight"][tokens]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    mask = causal[None] & (seg[:, :, None] == seg[:, None, :])  # (B, Tq, Tk)
    for l in range(L):
        p = "model.layers.%d." % l
        a = rmsnorm(x, W[p + "input_layernorm.weight"], eps)
        q = a @ W[p + "self_attn.q_proj.weight"].T
        k = a @ W[p + "self_attn.k_proj.weight"].T
        v = a @ W[p + "self_attn.v_proj.weight"].T
        if bias:
            q = q + W[p + "self_attn.q_proj.bias"]
            k = k + W[p + "self_attn.k_proj.bias"]
            v = v + W[p + "self_attn.v_proj.bias"]
        q = q.view(B, T, NH, HS).transpose(1, 2)
        k = k.view(B, T, NKV, HS).transpose(1, 2)
        v = v.view(B, T, NKV, HS).transpose(1, 2)
        q, k = rope(q, pos, theta), rope(k, pos, theta)
        k = k.repeat_interleave(NH // NKV, dim=1)  # repeat_kv
        v = v.repeat_interleave(NH // NKV, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(HS)
        s = s.masked_fill(~mask[:, None], float("-inf"))
        o = torch.softmax(s, dim=-1) @ v
        o = o.transpose(1, 2).reshape(B, T, C)
        x = x + o @ W[p + "self_attn.o_proj.weight"].T
        f = rmsnorm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = f @ W[p + "mlp.gate_proj.weight"].T
        u = f @ W[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ W[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if tie else W["lm_head.weight"]
    return x @ head.T


def loss_fn(logits, targets, weights, lengths):
    B, T, V = logits.shape
    valid = (torch.arange(T)[None, :] < lengths[:, None]) & (targets >= 0) & (weights > 0)
    w = torch.where(valid, weights, torch.zeros_like(weights))
    logp = torch.log_softmax(logits, dim=-1)
    tgt = targets.clamp(min=0)
    nll = -logp.gather(-1, tgt[..., None])[..., 0]
    wsum = w.sum()
    loss = (w * nll).sum() / wsum
    p = logp.exp()
    ent = -(p * logp).sum(-1)
    acc = (logits.argmax(-1) == targets).to(torch.float64)
    return loss, (w * acc).sum() / wsum, (w * ent).sum() / wsum, wsum


def names(cfg):
    V, C, L, NH, NKV, F, bias, tie, theta, eps = cfg
    HS = C // NH
    out = [("model.embed_tokens.weight", (V, C))]
    for l in range(L):
        p = "model.layers.%d." % l
        out.append((p + "input_layernorm.weight", (C,)))
        out.append((p + "self_attn.q_proj.weight", (NH * HS, C)))
        if bias:
            out.append((p + "self_attn.q_proj.bias", (NH * HS,)))
        out.append((p + "self_attn.k_proj.weight", (NKV * HS, C)))
        if bias:
            out.append((p + "self_attn.k_proj.bias", (NKV * HS,)))
        out.append((p + "self_attn.v_proj.weight", (NKV * HS, C)))
        if bias:
            out.append((p + "self_attn.v_proj.bias", (NKV * HS,)))
        out.append((p + "self_attn.o_proj.weight", (C, NH * HS)))
        out.append((p + "post_attention_layernorm.weight", (C,)))
        out.append((p + "mlp.gate_proj.weight", (F, C)))
        out.append((p + "mlp.up_proj.weight", (F, C)))
        out.append((p + "mlp.down_proj.weight", (C, F)))
    out.append(("model.norm.weight", (C,)))
    if not tie:
        out.append(("lm_head.weight", (V, C)))
    return out


def lr_lambda(step, warmup, total, floor):
    # the schedule documented in distill.h: (step+1)/W during warmup, then cosine to the floor
    if step < warmup:
        return (step + 1) / warmup
    prog = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * prog))


class Writer:
    def __init__(self):
        self.entries = []

    def add(self, name, t, dtype):
        t = torch.as_tensor(t).detach().contiguous()
        code, tt = {"f32": (0, torch.float32), "i32": (1, torch.int32), "f64": (2, torch.float64)}[dtype]
        self.entries.append((name, code, list(t.shape), t.to(tt).numpy().tobytes()))

    def write(self, path):
        with open(path, "wb") as f:
            f.write(b"DSTLFIX1")
            f.write(struct.pack("<I", len(self.entries)))
            for name, code, shape, data in self.entries:
                nb = name.encode()
                f.write(struct.pack("<I", len(nb)) + nb)
                f.write(struct.pack("<II", code, len(shape)))
                for d in shape:
                    f.write(struct.pack("<I", d))
                f.write(data)


def make(name, cfg, packed, fractional, decay_embeddings, seed):
    V, C, L, NH, NKV, F, bias, tie, theta, eps = cfg
    g = torch.Generator().manual_seed(seed)
    B, T = 2, 12
    W = {}
    for n, shape in names(cfg):
        if n.endswith("norm.weight"):
            w = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif n.endswith(".bias"):
            w = 0.1 * torch.randn(shape, generator=g)
        else:
            w = 0.2 * torch.randn(shape, generator=g)
        W[n] = w.to(torch.float32).to(torch.float64)  # the fixture stores float32: start from exactly those
    lengths = torch.tensor([T - 3, T])
    tokens = torch.randint(0, V, (B, T), generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)
    targets[:, :3] = -1  # a "prompt" that is not supervised
    targets[1, 7] = -1
    for t in range(int(lengths[0]), T):
        tokens[0, t] = 0  # padding (ignored by the C side)
        targets[0, t] = -1
    weights = torch.ones(B, T)
    if fractional:
        weights = (0.25 + 0.25 * (torch.arange(B * T) % 4)).view(B, T).to(torch.float64)
    seg = torch.zeros(B, T, dtype=torch.long)
    pos = torch.arange(T)[None, :].repeat(B, 1)
    if packed:
        seg[1, 5:] = 1
        pos[1, 5:] = torch.arange(T - 5)

    wr = Writer()
    wr.add("config", [V, C, L, NH, NKV, F, bias, tie, B, T, decay_embeddings, packed, fractional], "i32")
    wr.add("config_f", [theta, eps], "f64")
    for n, _ in names(cfg):
        wr.add("w." + n, W[n], "f32")
    wr.add("tokens", tokens, "i32")
    wr.add("targets", targets, "i32")
    wr.add("weights", weights, "f32")
    wr.add("lengths", lengths, "i32")
    wr.add("segments", seg, "i32")
    wr.add("positions", pos, "i32")

    params = {n: W[n].clone().requires_grad_(True) for n, _ in names(cfg)}
    logits = forward(cfg, params, tokens, pos, seg)
    loss, acc, ent, wsum = loss_fn(logits, targets, weights, lengths)
    loss.backward()
    wr.add("logits", logits, "f32")
    wr.add("stats", [loss.item(), acc.item(), ent.item(), wsum.item()], "f64")
    for n, _ in names(cfg):
        wr.add("g." + n, params[n].grad, "f64")

    # 10 AdamW steps
    lr, b1, b2, aeps, wd, clip, warmup, total, floor = 1e-2, 0.9, 0.95, 1e-8, 0.1, 0.5, 3, 10, 0.1
    params = {n: W[n].clone().requires_grad_(True) for n, _ in names(cfg)}
    decay = [p for n, p in params.items() if p.dim() == 2 and (decay_embeddings or n != "model.embed_tokens.weight")]
    no_decay = [p for n, p in params.items() if not (p.dim() == 2 and (decay_embeddings or n != "model.embed_tokens.weight"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(b1, b2), eps=aeps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_lambda(s, warmup, total, floor))
    losses, norms, lrs = [], [], []
    for step in range(10):
        opt.zero_grad()
        loss = loss_fn(forward(cfg, params, tokens, pos, seg), targets, weights, lengths)[0]
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(list(params.values()), clip).item())
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        losses.append(loss.item())
    with torch.no_grad():
        losses.append(loss_fn(forward(cfg, params, tokens, pos, seg), targets, weights, lengths)[0].item())
    wr.add("optim", [lr, b1, b2, aeps, wd, clip, warmup, total, floor], "f64")
    wr.add("train_losses", losses, "f64")
    wr.add("train_norms", norms, "f64")
    wr.add("train_lrs", lrs, "f64")
    for n, _ in names(cfg):
        wr.add("final." + n, params[n], "f32")
    path = os.path.join(HERE, "fixtures", name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    wr.write(path)
    print("%s: loss %.6f, 10-step losses %s, grad norms %s" % (
        path, losses[0], " ".join("%.4f" % x for x in losses), " ".join("%.3f" % x for x in norms)))


def main():
    # (V, C, L, NH, NKV, F, qkv_bias, tie, rope_theta, norm_eps)
    make("model_llama.bin", (40, 16, 2, 4, 4, 40, 0, 1, 10000.0, 1e-5), packed=0, fractional=0,
         decay_embeddings=1, seed=1)
    make("model_qwen.bin", (40, 16, 2, 4, 2, 40, 1, 0, 1000000.0, 1e-6), packed=1, fractional=1,
         decay_embeddings=0, seed=2)


if __name__ == "__main__":
    sys.exit(main())

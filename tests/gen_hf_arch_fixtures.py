#!/usr/bin/python3
"""PyTorch references for the Hugging Face architecture options (tests/test_hf_arch.c).

Writes three small checkpoints as transformers lays them out, each with a float64 reference
computed here by a PyTorch forward written from the semantics of transformers' modeling code
(modeling_llama.py, modeling_qwen2.py, modeling_qwen3.py and the RoPE initialisation functions
of modeling_rope_utils.py); transformers itself is not used:

  tests/fixtures/hf_qwen3/         Qwen3ForCausalLM: head_dim 16 decoupled from hidden/heads (8),
                                   per-head q_norm/k_norm (RMSNorm over head_dim on q and k, before
                                   RoPE), GQA 4/2, tied head; SHARDED in two files with
                                   model.safetensors.index.json
  tests/fixtures/hf_llama3_rope/   LlamaForCausalLM, head_dim 16, rope_scaling llama3 (factor 8,
                                   low 1, high 4, original context 256: the 8 frequencies fall in
                                   all three regimes), untied head
  tests/fixtures/hf_linear_rope/   Qwen2ForCausalLM (q/k/v bias), rope_scaling {"type": "linear",
                                   "factor": 4} (the older key), untied head

and in each folder reference.bin (little-endian): int32 B, T, V | int32 tokens (B,T) | int32
position_ids (B,T) (offset by 500 so scaled and unscaled frequencies differ) | float64 logits
(B,T,V) | float64 loss (mean cross-entropy of predicting tokens[:, t+1] at t < T-1) | int32
n_tensors | per tensor: int32 name length, name, int32 numel, float64 dloss/dweight.

Run with Debian's python3-torch: /usr/bin/python3 tests/gen_hf_arch_fixtures.py (or make fixtures).
"""
import json
import math
import os
import struct

import numpy as np
import torch

torch.set_default_dtype(torch.float64)


def inv_freq(cfg, hs):
    """_compute_default_rope_parameters, then the linear or llama3 rescaling."""
    base = cfg["rope_theta"]
    inv = 1.0 / (base ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs))
    rs = cfg.get("rope_scaling")
    kind = (rs or {}).get("rope_type", (rs or {}).get("type", "default"))
    if kind == "linear":
        inv = inv / rs["factor"]
    elif kind == "llama3":
        factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wl, high_wl = old / low, old / high
        wavelen = 2 * math.pi / inv
        inv_l = torch.where(wavelen > low_wl, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
        inv = torch.where(medium, smoothed, inv_l)
    return inv


def forward(cfg, W, tokens, pos):
    C, NH, NKV, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["num_hidden_layers"]
    HS = cfg.get("head_dim") or C // NH
    eps = cfg["rms_norm_eps"]
    qwen3 = cfg["model_type"] == "qwen3"
    B, T = tokens.shape

    def rms(x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def lin(x, name):
        y = x @ W[name + ".weight"].T
        return y + W[name + ".bias"] if name + ".bias" in W else y

    def rotate_half(x):
        return torch.cat((-x[..., HS // 2:], x[..., :HS // 2]), dim=-1)

    freqs = pos.to(torch.float64)[..., None] * inv_freq(cfg, HS)[None, None, :]   # (B,T,HS/2)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:, None], emb.sin()[:, None]                                 # (B,1,T,HS)
    x = W["model.embed_tokens.weight"][tokens]
    causal = torch.full((T, T), float("-inf")).triu(1)
    for l in range(L):
        p = "model.layers.%d." % l
        h = rms(x, W[p + "input_layernorm.weight"])
        q = lin(h, p + "self_attn.q_proj").view(B, T, NH, HS)
        k = lin(h, p + "self_attn.k_proj").view(B, T, NKV, HS)
        v = lin(h, p + "self_attn.v_proj").view(B, T, NKV, HS).transpose(1, 2)
        if qwen3:   # Qwen3Attention: q_norm / k_norm on the (.., head_dim) view, before RoPE
            q = rms(q, W[p + "self_attn.q_norm.weight"])
            k = rms(k, W[p + "self_attn.k_norm.weight"])
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(NH // NKV, dim=1)   # repeat_kv
        v = v.repeat_interleave(NH // NKV, dim=1)
        att = (q @ k.transpose(2, 3)) * HS ** -0.5 + causal
        o = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, NH * HS)
        x = x + lin(o, p + "self_attn.o_proj")
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        x = x + lin(torch.nn.functional.silu(lin(h, p + "mlp.gate_proj")) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rms(x, W["model.norm.weight"])
    head = W["lm_head.weight"] if "lm_head.weight" in W else W["model.embed_tokens.weight"]
    return x @ head.T


def write_safetensors(path, tensors):
    header, off, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name, a in tensors.items():
        b = np.ascontiguousarray(a.detach().numpy(), dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def make(d, cfg, seed, shards):
    g = torch.Generator().manual_seed(seed)
    V, C, L, F = cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    NH, NKV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    HS = cfg.get("head_dim") or C // NH
    bias = cfg["model_type"] == "qwen2"

    def r(*s):   # float32 values, held in float64
        return (0.3 * torch.randn(*s, generator=g)).float().double()

    W = {"model.embed_tokens.weight": r(V, C)}
    for l in range(L):
        p = "model.layers.%d." % l
        W[p + "input_layernorm.weight"] = 1 + r(C)
        W[p + "self_attn.q_proj.weight"] = r(NH * HS, C)
        W[p + "self_attn.k_proj.weight"] = r(NKV * HS, C)
        W[p + "self_attn.v_proj.weight"] = r(NKV * HS, C)
        if bias:
            W[p + "self_attn.q_proj.bias"] = r(NH * HS)
            W[p + "self_attn.k_proj.bias"] = r(NKV * HS)
            W[p + "self_attn.v_proj.bias"] = r(NKV * HS)
        W[p + "self_attn.o_proj.weight"] = r(C, NH * HS)
        if cfg["model_type"] == "qwen3":
            W[p + "self_attn.q_norm.weight"] = 1 + r(HS)
            W[p + "self_attn.k_norm.weight"] = 1 + r(HS)
        W[p + "post_attention_layernorm.weight"] = 1 + r(C)
        W[p + "mlp.gate_proj.weight"] = r(F, C)
        W[p + "mlp.up_proj.weight"] = r(F, C)
        W[p + "mlp.down_proj.weight"] = r(C, F)
    W["model.norm.weight"] = 1 + r(C)
    if not cfg["tie_word_embeddings"]:
        W["lm_head.weight"] = r(V, C)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    names = list(W)
    if shards == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), W)
    else:
        cut = len(names) // 2
        parts = [names[:cut], names[cut:]]
        wmap = {}
        for i, part in enumerate(parts):
            fn = "model-%05d-of-%05d.safetensors" % (i + 1, len(parts))
            write_safetensors(os.path.join(d, fn), {n: W[n] for n in part})
            wmap.update({n: fn for n in part})
        total = sum(4 * W[n].numel() for n in names)
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(wmap.items()))}, f, indent=2)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    B, T = 2, 9
    tokens = torch.randint(0, V, (B, T), generator=g)
    pos = torch.arange(T)[None].repeat(B, 1) + 500
    for t in W.values():
        t.requires_grad_(True)
    logits = forward(cfg, W, tokens, pos)
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1))
    loss.backward()
    with open(os.path.join(d, "reference.bin"), "wb") as f:
        f.write(struct.pack("<3i", B, T, V))
        f.write(tokens.numpy().astype("<i4").tobytes())
        f.write(pos.numpy().astype("<i4").tobytes())
        f.write(logits.detach().numpy().astype("<f8").tobytes())
        f.write(struct.pack("<d", loss.item()))
        f.write(struct.pack("<i", len(names)))
        for n in names:
            nb = n.encode()
            f.write(struct.pack("<i", len(nb)) + nb + struct.pack("<i", W[n].numel()))
            f.write(W[n].grad.numpy().astype("<f8").tobytes())
    print("wrote %s: loss %.6f" % (d, loss.item()))


def base(model_type, arch, **kw):
    cfg = {"architectures": [arch], "model_type": model_type, "vocab_size": 64, "hidden_size": 32,
           "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "hidden_act": "silu", "max_position_embeddings": 1024,
           "attention_bias": False, "torch_dtype": "float32"}
    cfg.update(kw)
    return cfg


if __name__ == "__main__":
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    make("tests/fixtures/hf_qwen3",
         base("qwen3", "Qwen3ForCausalLM", head_dim=16, rope_theta=1000000.0, tie_word_embeddings=True,
              use_sliding_window=False, sliding_window=None, max_window_layers=2, rope_scaling=None), 3, 2)
    make("tests/fixtures/hf_llama3_rope",
         base("llama", "LlamaForCausalLM", head_dim=16, tie_word_embeddings=False, rms_norm_eps=1e-5,
              rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                            "original_max_position_embeddings": 256}), 4, 1)
    make("tests/fixtures/hf_linear_rope",
         base("qwen2", "Qwen2ForCausalLM", tie_word_embeddings=False, rope_theta=1000000.0,
              rope_scaling={"type": "linear", "factor": 4.0}, use_sliding_window=False, sliding_window=4096), 5, 1)

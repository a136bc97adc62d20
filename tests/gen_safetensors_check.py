#!/usr/bin/python3
"""Reference fixtures for tests/test_interop.c, and a check of distill's safetensors export.

1. Writes tests/fixtures/trainer_{llama,qwen2}/: a small random Llama (tied embeddings, GQA) and
   Qwen2 (q/k/v bias, untied head) as model.safetensors + config.json with Hugging Face names,
   and logits.bin = int32 B, T, V | int32 tokens (B,T) | float32 logits (B,T,V) computed here by
   an independent float64 PyTorch forward (rotate_half RoPE, as transformers' Llama/Qwen2).
2. If build/test_interop/export/ exists (written by test_interop), reads distill's export with
   this same forward and compares against the logits distill computed.
Needs only Debian's python3-numpy and python3-torch; no transformers, no safetensors package.
"""
import json, os, struct, sys
import numpy as np
import torch

def write_safetensors(path, tensors):
    header, off, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", e
        b, en = e["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + b:8 + n + en], dtype="<f4").reshape(e["shape"])
    return out

def forward(W, cfg, tokens):
    """Llama/Qwen2 decoder in float64: tokens (B,T) -> logits (B,T,V)."""
    t = {k: torch.tensor(np.array(v), dtype=torch.float64) for k, v in W.items()}
    C, NH, NKV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    HS, L, eps = C // NH, cfg["num_hidden_layers"], cfg["rms_norm_eps"]
    B, T = tokens.shape
    def rms(x, w):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w
    def rope(x):  # x (B,T,H,HS), rotate_half convention
        inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, HS, 2, dtype=torch.float64) / HS))
        ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
        cos = torch.cat([ang.cos(), ang.cos()], -1)[None, :, None, :]
        sin = torch.cat([ang.sin(), ang.sin()], -1)[None, :, None, :]
        rot = torch.cat([-x[..., HS // 2:], x[..., :HS // 2]], -1)
        return x * cos + rot * sin
    def lin(x, name):
        y = x @ t[name + ".weight"].T
        return y + t[name + ".bias"] if name + ".bias" in t else y
    x = t["model.embed_tokens.weight"][torch.tensor(tokens, dtype=torch.long)]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(L):
        p = "model.layers.%d." % l
        h = rms(x, t[p + "input_layernorm.weight"])
        q = rope(lin(h, p + "self_attn.q_proj").view(B, T, NH, HS))
        k = rope(lin(h, p + "self_attn.k_proj").view(B, T, NKV, HS))
        v = lin(h, p + "self_attn.v_proj").view(B, T, NKV, HS)
        k = k.repeat_interleave(NH // NKV, dim=2)
        v = v.repeat_interleave(NH // NKV, dim=2)
        att = torch.einsum("bthd,bshd->bhts", q, k) / HS ** 0.5 + mask
        o = torch.einsum("bhts,bshd->bthd", att.softmax(-1), v).reshape(B, T, C)
        x = x + lin(o, p + "self_attn.o_proj")
        h = rms(x, t[p + "post_attention_layernorm.weight"])
        x = x + lin(torch.nn.functional.silu(lin(h, p + "mlp.gate_proj")) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rms(x, t["model.norm.weight"])
    head = t["lm_head.weight"] if "lm_head.weight" in t else t["model.embed_tokens.weight"]
    return (x @ head.T).numpy()

def make_fixture(d, qwen, seed):
    rng = np.random.default_rng(seed)
    V, C, L, NH, NKV, F = 64, 32, 2, 4, 2, 48
    HS = C // NH
    cfg = {"architectures": ["Qwen2ForCausalLM" if qwen else "LlamaForCausalLM"],
           "model_type": "qwen2" if qwen else "llama", "hidden_size": C, "intermediate_size": F,
           "num_attention_heads": NH, "num_hidden_layers": L, "num_key_value_heads": NKV,
           "vocab_size": V, "rms_norm_eps": 1e-6 if qwen else 1e-5,
           "rope_theta": 1000000.0 if qwen else 10000.0, "tie_word_embeddings": not qwen,
           "hidden_act": "silu", "max_position_embeddings": 64, "torch_dtype": "float32"}
    r = lambda *s: (0.3 * rng.standard_normal(s)).astype(np.float32)
    W = {"model.embed_tokens.weight": r(V, C)}
    for l in range(L):
        p = "model.layers.%d." % l
        W[p + "input_layernorm.weight"] = 1 + r(C)
        W[p + "self_attn.q_proj.weight"] = r(NH * HS, C)
        W[p + "self_attn.k_proj.weight"] = r(NKV * HS, C)
        W[p + "self_attn.v_proj.weight"] = r(NKV * HS, C)
        if qwen:
            W[p + "self_attn.q_proj.bias"] = r(NH * HS)
            W[p + "self_attn.k_proj.bias"] = r(NKV * HS)
            W[p + "self_attn.v_proj.bias"] = r(NKV * HS)
        W[p + "self_attn.o_proj.weight"] = r(C, NH * HS)
        W[p + "post_attention_layernorm.weight"] = 1 + r(C)
        W[p + "mlp.gate_proj.weight"] = r(F, C)
        W[p + "mlp.up_proj.weight"] = r(F, C)
        W[p + "mlp.down_proj.weight"] = r(C, F)
    W["model.norm.weight"] = 1 + r(C)
    if qwen:
        W["lm_head.weight"] = r(V, C)
    os.makedirs(d, exist_ok=True)
    write_safetensors(os.path.join(d, "model.safetensors"), W)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    B, T = 2, 10
    tokens = rng.integers(0, V, size=(B, T)).astype(np.int32)
    logits = forward(W, cfg, tokens).astype(np.float32)
    with open(os.path.join(d, "logits.bin"), "wb") as f:
        f.write(struct.pack("<3i", B, T, V) + tokens.astype("<i4").tobytes() + logits.astype("<f4").tobytes())
    print("wrote", d)

def check_export(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    W = read_safetensors(os.path.join(d, "model.safetensors"))
    raw = open(os.path.join(d, "logits.bin"), "rb").read()
    B, T, V = struct.unpack("<3i", raw[:12])
    tokens = np.frombuffer(raw[12:12 + 4 * B * T], dtype="<i4").reshape(B, T)
    want = np.frombuffer(raw[12 + 4 * B * T:], dtype="<f4").reshape(B, T, V)
    got = forward(W, cfg, tokens)
    diff = float(np.abs(got - want).max())
    print("%s: %s, %d tensors, max |torch - distill| logits = %.3g" % (d, cfg["architectures"][0], len(W), diff))
    if diff > 2e-4:
        sys.exit("export check FAILED")

if __name__ == "__main__":
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    os.chdir(root)
    make_fixture("tests/fixtures/trainer_llama", False, 1)
    make_fixture("tests/fixtures/trainer_qwen2", True, 2)
    if os.path.exists("build/test_interop/export/logits.bin"):
        check_export("build/test_interop/export")
    else:
        print("build/test_interop/export absent: run build/tests/test_interop first to check the export")

#!/usr/bin/env python3
"""PyTorch reference for bench/lora.bench.mjs: the same LoRA step in PyTorch on the CPU.

A SmolLM2-135M-shaped BitNet b1.58 (hidden 576, 9 heads, 3 kv heads, intermediate 1536, vocab
49152, tied embeddings, squared-ReLU gated MLP, attention and FFN sub-norms, RoPE; random weights),
batch 4 x context 256. The base is frozen and pre-quantised: each projection's weight is already
ternary codes times its absmean scale (an f32 tensor, as a PyTorch user would hold it); activations
are fake-quantised per token to int8 (absmax, straight-through estimator) in every projection.
LoRA r 16, alpha 32 on all seven projections (dropout 0), AdamW on the adapters only.

  python3 bench/lora-torch.py [--layers N] [--steps S] [--threads T]

prints one JSON line: {"bench": "lora-torch", "tokens_per_s", "step_s", "peak_rss_mb", ...}.
Needs python3 with torch (Debian: apt-get install python3-torch, then /usr/bin/python3); it is not part of npm test.
Measured: median step time of S steps after one warm-up step; peak RSS = getrusage maxrss.
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument('--layers', type=int, default=30)
p.add_argument('--steps', type=int, default=3)
p.add_argument('--threads', type=int, default=2)
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(1)

V, C, NH, NKV, HID, T, B, R, ALPHA = 49152, 576, 9, 3, 1536, 256, 4, 16, 32
HS = C // NH
EPS = 1e-5


def quantize_activations(x):
    """Per-token absmax int8 fake quantisation with a straight-through gradient."""
    s = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    q = (x * s).round().clamp(-128, 127) / s
    return x + (q - x).detach()


def ternary(out_f, in_f):
    """Frozen pre-quantised weight: ternary codes of a N(0, 0.02^2) latent times its absmean."""
    w = torch.randn(out_f, in_f) * 0.02
    scale = w.abs().mean().clamp(min=1e-5)
    return ((w / scale).round().clamp(-1, 1) * scale).requires_grad_(False)


class LoraBitLinear(torch.nn.Module):
    def __init__(self, in_f, out_f):
        super().__init__()
        self.register_buffer('weight', ternary(out_f, in_f))
        self.lora_A = torch.nn.Parameter(torch.empty(R, in_f).uniform_(-1 / math.sqrt(in_f), 1 / math.sqrt(in_f)))
        self.lora_B = torch.nn.Parameter(torch.zeros(out_f, R))
        self.scale = ALPHA / R

    def forward(self, x):
        return F.linear(quantize_activations(x), self.weight) + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scale


def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rope_tables():
    inv = 1.0 / (500000 ** (torch.arange(0, HS, 2).float() / HS))
    f = torch.outer(torch.arange(T).float(), inv)
    return torch.cat([f, f], -1).cos(), torch.cat([f, f], -1).sin()


COS, SIN = rope_tables()


def rope(x):  # (B, heads, T, HS), Hugging Face's rotate_half convention
    x1, x2 = x[..., : HS // 2], x[..., HS // 2:]
    return x * COS + torch.cat([-x2, x1], -1) * SIN


MASK = torch.full((T, T), float('-inf')).triu(1)


def attention(q, k, v):  # causal; F.scaled_dot_product_attention where torch has it (>= 2.0)
    if hasattr(F, 'scaled_dot_product_attention'):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(HS) + MASK, dim=-1) @ v


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = LoraBitLinear(C, C), LoraBitLinear(C, NKV * HS), LoraBitLinear(C, NKV * HS), LoraBitLinear(C, C)
        self.gate, self.up, self.down = LoraBitLinear(C, HID), LoraBitLinear(C, HID), LoraBitLinear(HID, C)
        for n, d in [('n_in', C), ('n_post', C), ('n_attn_sub', C), ('n_ffn_sub', HID)]:
            self.register_buffer(n, torch.ones(d))

    def forward(self, x):
        h = rms_norm(x, self.n_in)
        q = rope(self.q(h).view(B, T, NH, HS).transpose(1, 2))
        k = rope(self.k(h).view(B, T, NKV, HS).transpose(1, 2)).repeat_interleave(NH // NKV, dim=1)
        v = self.v(h).view(B, T, NKV, HS).transpose(1, 2).repeat_interleave(NH // NKV, dim=1)
        a = attention(q, k, v).transpose(1, 2).reshape(B, T, C)
        x = x + self.o(rms_norm(a, self.n_attn_sub))
        h = rms_norm(x, self.n_post)
        m = F.relu(self.gate(h)).pow(2) * self.up(h)
        return x + self.down(rms_norm(m, self.n_ffn_sub))


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer('embed', torch.randn(V, C) * 0.02)
        self.register_buffer('n_final', torch.ones(C))
        self.layers = torch.nn.ModuleList([Block() for _ in range(args.layers)])

    def forward(self, tokens, targets):
        x = F.embedding(tokens, self.embed)
        for layer in self.layers:
            x = layer(x)
        logits = F.linear(rms_norm(x, self.n_final), self.embed)
        return F.cross_entropy(logits.view(-1, V), targets.view(-1))


model = Model()
params = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0)
times = []
for s in range(args.steps + 1):
    tokens = torch.randint(0, V, (B, T))
    targets = torch.randint(0, V, (B, T))
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=False)
    loss = model(tokens, targets)
    loss.backward()
    opt.step()
    loss.item()
    if s > 0:
        times.append(time.perf_counter() - t0)
times.sort()
step_s = times[len(times) // 2]
print(json.dumps({
    'bench': 'lora-torch', 'torch': torch.__version__, 'layers': args.layers, 'threads': args.threads, 'steps': args.steps,
    'step_s': step_s, 'tokens_per_s': B * T / step_s, 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    'trainable': sum(p.numel() for p in params),
}))

"""Greedy generation for Llama-family models without the framework overhead.

At 135M parameters a decode step reads ~60 MB of int4 weights: ~1.5 ms of DRAM time, while an
eager Hugging Face step spends more than that in Python (module calls, cache bookkeeping, mask
building; see the profile in the README). This runner keeps the model's own weights and modules
(QuantLinear or nn.Linear) but drives them from one flat loop:

- a static KV cache, preallocated for (batch, max_len): no growth or concatenation;
- q/k/v and gate/up fused into one projection each (QuantLinear.concat: one kernel call, the
  same bytes), so a layer is four matrix products;
- rotary embedding as one complex multiply: q/k weight rows are permuted once so that each
  head's rotated pairs (i, i + d/2) sit side by side (q·k is unchanged by the same permutation
  of both), with the rotations precomputed for all positions;
- attention of a single new token as two small matmuls over the cache (no mask, no kernel
  selection: sdpa's fixed cost is twice the work at this size);
- QuantLinear's prepared kernels (ops.PreparedGemm): no dispatcher or re-validation per call;
  float32 layers kept unquantized (lm_head) through gemm_f32 at decode;
- decode steps (one new token per sequence) in C++: ops.LlamaDecodeStep runs the whole layer
  loop natively over the same kernels and the same cache, where the Python loop below costs ~25
  small torch ops per layer (~110 µs of Python and dispatch per layer on this machine, measured
  with the GEMMs stubbed out). Prompts (many tokens) go through the Python loop, where that cost
  is shared by all positions; so does any model the native step cannot run (not float32, or a
  projection that is not a QuantLinear, a SparseLinear or a float32 linear), and
  ``native=False``.

Greedy decoding only; its tokens match the Hugging Face model's greedy ``generate`` (tested), up
to near-ties where int8-quantized prompt activations turn last-bit differences into visible ones
(tests/integration/test_default_model.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from ..nn import QuantLinear, SparseLinear

SUPPORTED = ("llama", "mistral", "qwen2")
# Up to this many rows, float32 layers use llmaccel's gemm_f32 (streams the weight at 21-23 GB/s
# on this machine, against ~10 GB/s for torch's fp32 GEMV on the 49152 x 576 lm_head); prompts
# (many rows) go to torch's blocked GEMM.
F32_GEMV_MAX_M = 4


class _F32Linear(nn.Module):
    """A float32 nn.Linear kept unquantized (lm_head by default), run for decode by gemm_f32."""

    def __init__(self, lin: nn.Linear):
        super().__init__()
        self.lin = lin
        self.weight = lin.weight.detach().contiguous()
        self.bias = None if lin.bias is None else lin.bias.detach().float().contiguous()

    def forward(self, x):
        if x.numel() <= F32_GEMV_MAX_M * self.weight.shape[1] and x.dtype == torch.float32:
            return ops.gemm_f32(x, self.weight, self.bias)
        return self.lin(x)


def _fast(mod: nn.Module) -> nn.Module:
    if type(mod) is nn.Linear and mod.weight.dtype == torch.float32 and mod.weight.is_cpu:
        return _F32Linear(mod)
    return mod


def _interleave_heads(mod: nn.Module, heads: int, head_dim: int) -> nn.Module:
    """mod with its output rows reordered per head to (0, d/2, 1, d/2 + 1, ...)."""
    half = head_dim // 2
    per_head = torch.stack([torch.arange(half), torch.arange(half) + half], dim=1).reshape(-1)
    index = (torch.arange(heads)[:, None] * head_dim + per_head).reshape(-1)
    if isinstance(mod, (QuantLinear, SparseLinear)):
        return mod.select_rows(index)
    if type(mod) is nn.Linear:
        out = nn.Linear(mod.in_features, index.numel(), bias=mod.bias is not None,
                        dtype=mod.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(mod.weight[index])
            if mod.bias is not None:
                out.bias.copy_(mod.bias[index])
        return out.requires_grad_(False)
    raise TypeError(f"cannot reorder the rows of {type(mod).__name__}")


def _fuse(mods: list[nn.Module]) -> nn.Module:
    for packed in (QuantLinear, SparseLinear):
        if all(isinstance(m, packed) for m in mods):
            try:
                return packed.concat(mods)
            except ValueError:
                pass  # different configs or unaligned sizes: run them as they are
    if all(type(m) is nn.Linear for m in mods):
        fused = nn.Linear(mods[0].in_features, sum(m.out_features for m in mods),
                          bias=mods[0].bias is not None, dtype=mods[0].weight.dtype)
        with torch.no_grad():
            fused.weight.copy_(torch.cat([m.weight for m in mods]))
            if fused.bias is not None:
                fused.bias.copy_(torch.cat([m.bias for m in mods]))
        return fused.requires_grad_(False)
    return _Parallel(mods)


class _Parallel(nn.Module):
    """Fallback for projections that cannot be fused: run each, concatenate the outputs."""

    def __init__(self, mods):
        super().__init__()
        self.mods = nn.ModuleList(mods)

    def forward(self, x):
        return torch.cat([m(x) for m in self.mods], dim=-1)


@dataclass
class _Layer:
    ln1: torch.Tensor
    qkv: nn.Module
    o: nn.Module
    ln2: torch.Tensor
    gate_up: nn.Module
    down: nn.Module


class LlamaDecoder:
    """Runs a Hugging Face Llama / Mistral / Qwen2 causal LM (float or quantized by llmaccel)
    with a static KV cache. ``generate(input_ids, new_tokens)`` decodes greedily."""

    def __init__(self, model: nn.Module, max_len: int = 1024, native: bool | None = None):
        cfg = model.config
        if getattr(cfg, "model_type", None) not in SUPPORTED:
            raise TypeError(f"LlamaDecoder runs {', '.join(SUPPORTED)} models, "
                            f"not {getattr(cfg, 'model_type', type(model).__name__)}")
        if getattr(cfg, "hidden_act", "silu") != "silu":
            raise TypeError(f"LlamaDecoder needs SiLU MLPs, got {cfg.hidden_act}")
        inner = model.model
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.eps = cfg.rms_norm_eps
        self.max_len = max_len
        self.embed = inner.embed_tokens
        self.norm = inner.norm.weight.detach()
        self.lm_head = _fast(model.lm_head)
        self.dtype = self.norm.dtype
        self.layers = []
        for layer in inner.layers:
            a, m = layer.self_attn, layer.mlp
            q = _interleave_heads(a.q_proj, self.n_heads, self.head_dim)
            k = _interleave_heads(a.k_proj, self.n_kv, self.head_dim)
            self.layers.append(_Layer(
                layer.input_layernorm.weight.detach(), _fast(_fuse([q, k, a.v_proj])),
                _fast(a.o_proj), layer.post_attention_layernorm.weight.detach(),
                _fast(_fuse([m.gate_proj, m.up_proj])), _fast(m.down_proj)))
        self.q_size = self.n_heads * self.head_dim
        self.kv_size = self.n_kv * self.head_dim
        self.inter = layer.mlp.gate_proj.out_features
        # cos/sin for every position, as the model's own rotary embedding computes them.
        pos = torch.arange(max_len, dtype=torch.long)[None]
        probe = torch.zeros(1, dtype=torch.float32)
        cos, sin = inner.rotary_emb(probe, pos)
        half = self.head_dim // 2
        self.rot = torch.complex(cos[0, :, :half].float(), sin[0, :, :half].float())
        self.scaling = self.head_dim ** -0.5
        self.cache: torch.Tensor | None = None
        # None: native decode steps wherever the model allows; True: required; False: never.
        why = self._native_blocker()
        if native and why:
            raise TypeError(f"the native decode step cannot run this model: {why}")
        self.native = why is None if native is None else native
        self.step: ops.LlamaDecodeStep | None = None

    def _native_blocker(self) -> str | None:
        if self.dtype != torch.float32 or self.embed.weight.dtype != torch.float32:
            return f"it runs float32 models, this one is {self.dtype}"
        if not self.embed.weight.is_cpu:
            return "the model is not on the CPU"
        for layer in self.layers:
            for mod in (layer.qkv, layer.o, layer.gate_up, layer.down):
                if not isinstance(mod, (QuantLinear, SparseLinear, _F32Linear)):
                    return f"{type(mod).__name__} projections are not supported"
        if not isinstance(self.lm_head, (QuantLinear, SparseLinear, _F32Linear)):
            return f"a {type(self.lm_head).__name__} lm_head is not supported"
        return None

    def _alloc(self, batch: int) -> None:
        # (layers, k/v, batch, kv_heads, max_len, head_dim): one buffer, no growth.
        shape = (len(self.layers), 2, batch, self.n_kv, self.max_len, self.head_dim)
        if self.cache is None or self.cache.shape != shape:
            self.cache = torch.zeros(shape, dtype=self.dtype)
            self.step = self._native_step(batch) if self.native else None

    def _native_step(self, batch: int) -> ops.LlamaDecodeStep:
        def proj(mod):
            if isinstance(mod, QuantLinear):
                return ops.DecodeLinear(mod.prepared(batch))
            if isinstance(mod, SparseLinear):
                if mod.config.bits == 4:
                    return ops.DecodeLinear.sparse(
                        mod.out_features, mod.in_features, mod.bias, qweight=mod.qweight,
                        scales=mod.scales, int8_act=mod.kernel_for(batch) == "gemm_w4a8_sp24")
                return ops.DecodeLinear.sparse(mod.out_features, mod.in_features, mod.bias,
                                               packed=mod.packed)
            return ops.DecodeLinear(mod.weight, mod.bias)

        layers = [(lay.ln1.contiguous(), proj(lay.qkv), proj(lay.o), lay.ln2.contiguous(),
                   proj(lay.gate_up), proj(lay.down)) for lay in self.layers]
        return ops.LlamaDecodeStep(
            embed=self.embed.weight.detach().contiguous(),
            rot=torch.view_as_real(self.rot).contiguous(), norm=self.norm.contiguous(),
            cache=self.cache, layers=layers, lm_head=proj(self.lm_head), heads=self.n_heads,
            kv_heads=self.n_kv, head_dim=self.head_dim, inter=self.inter, eps=self.eps,
            scale=self.scaling)

    @torch.inference_mode()
    def forward(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        """Runs tokens ids (B, T) at positions start..start+T-1; returns the last position's
        logits (B, vocab). The cache keeps keys/values for later calls."""
        b, t = ids.shape
        if start + t > self.max_len:
            raise ValueError(f"sequence of {start + t} tokens exceeds max_len={self.max_len}")
        if t == 1 and self.step is not None and b == self.step.batch:
            return self.step(ids[:, 0], start)
        x = self.embed(ids)
        rot = self.rot[start:start + t, None]  # (t, 1, head_dim / 2) complex
        # Decode (t == 1) attends to every cached position; a prompt needs the causal mask.
        mask = None
        if t > 1:
            mask = torch.ones(t, start + t, dtype=torch.bool).tril(start)
        for i, layer in enumerate(self.layers):
            x = _layer_step(x, layer.ln1, layer.qkv, layer.o, layer.ln2, layer.gate_up, layer.down,
                           self.cache[i], rot, start, mask, self.eps, self.n_heads,
                           self.n_kv, self.head_dim, self.q_size, self.kv_size, self.inter,
                           self.scaling)
        x = F.rms_norm(x[:, -1:], (x.shape[-1],), self.norm, self.eps)
        return self.lm_head(x)[:, 0]

    @torch.inference_mode()
    def generate(self, input_ids: torch.Tensor, new_tokens: int) -> torch.Tensor:
        """Greedy continuation of input_ids (B, T): (B, T + new_tokens), exactly new_tokens more
        (no stop at end-of-sequence: benchmarks need a fixed length)."""
        return self.timed_generate(input_ids, new_tokens)[0]

    @torch.inference_mode()
    def timed_generate(self, input_ids: torch.Tensor,
                       new_tokens: int) -> tuple[torch.Tensor, float, float]:
        """generate(), plus the seconds of the prefill (the prompt and the first new token) and
        of the decode steps after it, timed in the same run."""
        if input_ids.dim() != 2 or input_ids.shape[1] == 0 or new_tokens < 0:
            raise ValueError(f"need input_ids (batch, tokens >= 1) and new_tokens >= 0, got "
                             f"{tuple(input_ids.shape)} and {new_tokens}")
        b, t = input_ids.shape
        start = time.perf_counter()
        self._alloc(b)
        out = torch.empty(b, t + new_tokens, dtype=torch.long)
        out[:, :t] = input_ids
        logits = self.forward(input_ids, 0)
        nxt = logits.argmax(dim=-1)
        prefill_end = time.perf_counter()
        for i in range(new_tokens):
            out[:, t + i] = nxt
            if i + 1 < new_tokens:
                nxt = self.forward(nxt[:, None], t + i).argmax(dim=-1)
        end = time.perf_counter()
        return out, prefill_end - start, end - prefill_end


def _layer_step(x, ln1, qkv, o, ln2, gate_up, down, cache, rot, start: int, mask,
                eps: float, n_heads: int, n_kv: int, head_dim: int, q_size: int, kv_size: int,
                inter: int, scaling: float):
    b, t, h = x.shape
    y = qkv(F.rms_norm(x, (h,), ln1, eps))
    qk = y[..., :q_size + kv_size].view(b, t, n_heads + n_kv, head_dim // 2, 2)
    qk = torch.view_as_real(torch.view_as_complex(qk.float()) * rot).to(y.dtype)
    qk = qk.view(b, t, n_heads + n_kv, head_dim)
    q = qk[:, :, :n_heads].transpose(1, 2)
    end = start + t
    cache[0, :, :, start:end] = qk[:, :, n_heads:].transpose(1, 2)
    cache[1, :, :, start:end] = y[..., q_size + kv_size:].view(b, t, n_kv, head_dim).transpose(1, 2)
    keys, values = cache[0, :, :, :end], cache[1, :, :, :end]
    if t == 1:
        # One query per head; heads sharing a KV head are rows of one (group, d) block.
        qg = q.reshape(b, n_kv, n_heads // n_kv, head_dim) * scaling
        p = torch.softmax(qg @ keys.transpose(-1, -2), dim=-1)
        attn = (p @ values).reshape(b, 1, n_heads * head_dim)
    else:
        attn = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=scaling,
                                              enable_gqa=n_kv != n_heads)
        attn = attn.transpose(1, 2).reshape(b, t, n_heads * head_dim)
    x = x + o(attn)
    gu = gate_up(F.rms_norm(x, (h,), ln2, eps))
    return x + down(F.silu(gu[..., :inter]) * gu[..., inter:])

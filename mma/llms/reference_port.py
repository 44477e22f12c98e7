"""The reference LaVIN code's LLaMA computation, for benchmarks that compare mma with it.

Meta's formulation as the original code runs it: rotary embeddings by complex multiplication,
matmul-softmax attention with an additive float mask, logits over every position. Adapters are
applied by a callable the caller gives (the benchmark's port of the reference's Conv1d adapters).
Not used by mma's models; see :mod:`mma.apps.benchmark_reference`.
"""
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: ``adapt(adapter, x) -> x'``: how the caller applies an adapter found in a slot.
Adapt = Callable[[nn.Module, Tensor], Tensor]


def _freqs_cis(head_dim: int, length: int, theta: float, device) -> Tensor:
    freqs = 1.0 / (theta**(torch.arange(0, head_dim, 2, device=device)[:head_dim // 2].float() /
                           head_dim))
    angles = torch.outer(torch.arange(length, device=device).float(), freqs)
    return torch.polar(torch.ones_like(angles), angles)  # (T, Dh/2) complex64


def _rotary(x: Tensor, freqs_cis: Tensor) -> Tensor:
    """x (B, T, H, Dh) rotated by complex multiplication, as Meta's LLaMA code does."""
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    out = torch.view_as_real(xc * freqs_cis[None, :, None]).flatten(3)
    return out.type_as(x)


def _llm_block(blk: nn.Module, x: Tensor, freqs_cis: Tensor, mask: Tensor, adapt: Adapt) -> Tensor:
    a = blk.attention_norm(x)  # Meta's RMSNorm, as in the reference
    if blk.adapter_attn is not None:
        a = adapt(blk.adapter_attn, a)
    att = blk.attention
    b, t, _ = a.shape
    q = att.wq(a).view(b, t, att.n_heads, att.head_dim)
    k = att.wk(a).view(b, t, att.n_kv_heads, att.head_dim)
    v = att.wv(a).view(b, t, att.n_kv_heads, att.head_dim)
    q, k = _rotary(q, freqs_cis), _rotary(k, freqs_cis)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    rep = att.n_heads // att.n_kv_heads
    if rep > 1:
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(att.head_dim) + mask
    probs = F.softmax(scores.float(), dim=-1).type_as(q)
    out = torch.matmul(probs, v).transpose(1, 2).contiguous().view(b, t, -1)
    h = x + att.wo(out)
    f = blk.ffn_norm(h)
    if blk.adapter_ffn is not None:
        f = adapt(blk.adapter_ffn, f)
    ff = blk.feed_forward
    return h + ff.w2(F.silu(ff.w1(f)) * ff.w3(f))


def reference_llama_logits(llm: nn.Module, h: Tensor, mask: Tensor, adapt: Adapt) -> Tensor:
    """Logits (B, T, V) of an mma :class:`~mma.llms.LLaMA` on assembled embeddings ``h``, computed
    the reference code's way; ``mask`` is the additive (1, 1, T, T) float mask."""
    freqs_cis = _freqs_cis(llm.args.head_dim, h.shape[1], llm.args.rope_theta, h.device)
    for blk in llm.layers:
        h = _llm_block(blk, h, freqs_cis, mask, adapt)
    return llm.output(llm.norm(h))  # every position, the whole vocabulary

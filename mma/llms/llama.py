"""LLaMA (Meta layout) with explicit adapter slots and an optional KV cache.

Module and parameter names mirror Meta's checkpoint keys (``tok_embeddings``, ``layers.{i}.attention.wq``,
``attention_norm``, ``feed_forward.w1``, ``ffn_norm``, ``norm``, ``output``) so Meta weights load as is.
"""
import math
from dataclasses import asdict, dataclass, fields
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mma.registry import LLMS
from mma.slots import AdapterSlot
from mma.routers.routing import RoutingContext

ATTN_BACKENDS = ('sdpa', 'eager', 'xformers')


@dataclass
class LLaMAArgs:
    """Hyperparameters, named as in Meta's ``params.json``."""
    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: Optional[int] = None
    vocab_size: int = 32000
    multiple_of: int = 256
    ffn_dim_multiplier: Optional[float] = None
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_seq_len: int = 2048

    def __post_init__(self):
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.dim % self.n_heads or self.n_heads % self.n_kv_heads:
            raise ValueError(f'LLaMA: dim={self.dim} must be divisible by n_heads={self.n_heads}, '
                             f'and n_heads by n_kv_heads={self.n_kv_heads}')

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def ffn_hidden_dim(self) -> int:
        hidden = int(2 * 4 * self.dim / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return self.multiple_of * ((hidden + self.multiple_of - 1) // self.multiple_of)

    @classmethod
    def from_dict(cls, d: dict) -> 'LLaMAArgs':
        """From a ``params.json``-like dict; unknown keys are ignored, ``vocab_size`` -1 dropped."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if kw.get('vocab_size', 0) is not None and kw.get('vocab_size', 0) < 0:
            kw.pop('vocab_size')
        return cls(**kw)


class RMSNorm(nn.Module):

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return out.type_as(x) * self.weight


def rope_cos_sin(positions: Tensor, head_dim: int, theta: float) -> Tuple[Tensor, Tensor]:
    """cos/sin tables for integer ``positions`` (B, T): each ``(B, T, 1, head_dim // 2)``, fp32."""
    inv_freq = 1.0 / (theta**(torch.arange(0, head_dim, 2, device=positions.device).float() /
                              head_dim))
    angles = positions.float()[..., None] * inv_freq  # (B, T, Dh/2)
    return angles.cos()[:, :, None], angles.sin()[:, :, None]


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate interleaved pairs ``(x[2i], x[2i+1])`` as Meta's complex-number RoPE does."""
    xr = x.float().unflatten(-1, (-1, 2))  # (B, T, H, Dh/2, 2)
    x0, x1 = xr[..., 0], xr[..., 1]
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return out.flatten(-2).type_as(x)


class KVCache:
    """A preallocated key/value cache for all layers; attached for inference only.

    Columns ``[0, length)`` are filled. A forward call writes its T new columns at ``length`` in
    every layer; the model advances ``length`` once all layers have run. ``routing`` keeps the
    router weights computed at prefill (see :class:`~mma.routers.RoutingContext`).
    """

    def __init__(self, n_layers: int, batch_size: int, max_len: int, n_kv_heads: int,
                 head_dim: int, dtype: torch.dtype, device: torch.device):
        shape = (n_layers, batch_size, n_kv_heads, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.length = 0
        self.routing: dict = {}

    @property
    def max_len(self) -> int:
        return self.k.shape[3]

    def update(self, layer: int, k: Tensor, v: Tensor) -> Tuple[Tensor, Tensor]:
        """Write (B, Hkv, T, Dh) at the current length; return the filled (B, Hkv, S, Dh)."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f'KVCache: {end} positions exceed its max_len {self.max_len}')
        self.k[layer, :, :, start:end] = k
        self.v[layer, :, :, start:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


class Attention(nn.Module):

    def __init__(self, args: LLaMAArgs, layer_id: int, backend: str = 'sdpa'):
        super().__init__()
        self.layer_id = layer_id
        self.n_heads, self.n_kv_heads, self.head_dim = args.n_heads, args.n_kv_heads, args.head_dim
        self.backend = backend
        self.wq = nn.Linear(args.dim, args.n_heads * args.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, args.n_kv_heads * args.head_dim, bias=False)
        self.wv = nn.Linear(args.dim, args.n_kv_heads * args.head_dim, bias=False)
        self.wo = nn.Linear(args.n_heads * args.head_dim, args.dim, bias=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Optional[Tensor],
                cache: Optional[KVCache] = None) -> Tensor:
        """x: (B, T, D); mask: bool (B or 1, 1, T, S), True = may attend; None = causal."""
        b, t, _ = x.shape
        q = apply_rope(self.wq(x).view(b, t, self.n_heads, self.head_dim), cos, sin)
        k = apply_rope(self.wk(x).view(b, t, self.n_kv_heads, self.head_dim), cos, sin)
        v = self.wv(x).view(b, t, self.n_kv_heads, self.head_dim)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (B, H, T, Dh)
        if cache is not None:
            k, v = cache.update(self.layer_id, k, v)  # (B, Hkv, S, Dh)
        if self.n_kv_heads != self.n_heads:
            rep = self.n_heads // self.n_kv_heads
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        if mask is None and cache is not None and cache.length > 0:
            raise ValueError('Attention: decoding with a KV cache needs an explicit mask')
        out = self._attend(q, k, v, mask)  # (B, H, T, Dh)
        return self.wo(out.transpose(1, 2).reshape(b, t, -1))

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor]) -> Tensor:
        if self.backend == 'sdpa':
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        t, s = q.shape[2], k.shape[2]
        if mask is None:
            mask = torch.ones(t, s, dtype=torch.bool, device=q.device).tril(s - t)[None, None]
        bias = torch.zeros(mask.shape, dtype=q.dtype, device=q.device)
        bias = bias.masked_fill(~mask, float('-inf'))
        if self.backend == 'eager':  # the reference's matmul-softmax, kept for benchmarks
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim) + bias
            return torch.softmax(scores.float(), dim=-1).type_as(q) @ v
        if self.backend == 'xformers':
            if not q.is_cuda:
                raise RuntimeError("attn_backend='xformers' needs CUDA; use 'sdpa' on CPU")
            import xformers.ops as xops
            bias = bias.expand(q.shape[0], q.shape[1], t, s)
            out = xops.memory_efficient_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_bias=bias)
            return out.transpose(1, 2)
        raise ValueError(f'unknown attn_backend {self.backend!r}; expected one of {ATTN_BACKENDS}')


class FeedForward(nn.Module):

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden_dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    """A LLaMA block with two adapter slots.

    ``adapter_attn`` maps the output of ``attention_norm`` before it enters the attention;
    ``adapter_ffn`` maps the output of ``ffn_norm`` before the FFN. Both are None (identity) by
    default; an adapter is any module called as ``adapter(x, ctx)``.
    """

    def __init__(self, args: LLaMAArgs, layer_id: int, attn_backend: str = 'sdpa'):
        super().__init__()
        self.attention = Attention(args, layer_id, attn_backend)
        self.feed_forward = FeedForward(args.dim, args.ffn_hidden_dim)
        self.attention_norm = RMSNorm(args.dim, args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, args.norm_eps)
        self.register_module('adapter_attn', None)
        self.register_module('adapter_ffn', None)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Optional[Tensor],
                ctx: Optional[RoutingContext] = None, cache: Optional[KVCache] = None) -> Tensor:
        a = self.attention_norm(x)
        if self.adapter_attn is not None:
            a = self.adapter_attn(a, ctx)
        h = x + self.attention(a, cos, sin, mask, cache)
        f = self.ffn_norm(h)
        if self.adapter_ffn is not None:
            f = self.adapter_ffn(f, ctx)
        return h + self.feed_forward(f)


@LLMS.register_module()
class LLaMA(nn.Module):
    """The LLaMA decoder.

    Args:
        preset: A name from :data:`mma.llms.LLAMA_PRESETS` (e.g. ``'llama-7b'``); keyword
            hyperparameters override it.
        attn_backend: ``'sdpa'`` (default), ``'eager'`` (reference-style matmul-softmax) or
            ``'xformers'`` (CUDA only).
        gradient_checkpointing: Recompute each block in the backward pass (training only).
        checkpoint: Path of the base weights (Meta folder or HF folder), loaded by
            :meth:`load_pretrained`, never at construction.
        quantization: ``'nf4'``, ``'fp4'`` or ``'int8'`` to quantise the block projections with
            bitsandbytes after loading (LaVIN-lite; CUDA only, see :mod:`mma.llms.lowbit`).
        compile: If given, keyword arguments of ``torch.compile`` for every block (see
            :meth:`compile_blocks`), e.g. ``dict(mode='reduce-overhead', dynamic=False)`` for CUDA
            graphs; pair that with ``mma_collate(pad_to_multiple_of=...)`` so that batches come
            in a few shapes. State-dict keys are unchanged.
        **kwargs: :class:`LLaMAArgs` fields.
    """

    def __init__(self, preset: Optional[str] = None, attn_backend: str = 'sdpa',
                 gradient_checkpointing: bool = False, checkpoint: Optional[str] = None,
                 quantization: Optional[str] = None, compile: Optional[dict] = None,
                 **kwargs):
        super().__init__()
        from .lowbit import check_quantization
        from .presets import LLAMA_PRESETS
        check_quantization(quantization)
        self.quantization = quantization
        if attn_backend not in ATTN_BACKENDS:
            raise ValueError(f'unknown attn_backend {attn_backend!r}; expected one of '
                             f'{ATTN_BACKENDS}')
        base = {}
        if preset is not None:
            if preset not in LLAMA_PRESETS:
                raise KeyError(f'unknown LLaMA preset {preset!r}; known: '
                               f'{", ".join(sorted(LLAMA_PRESETS))}')
            base = dict(LLAMA_PRESETS[preset])
        base.update(kwargs)
        self.args = LLaMAArgs(**base)
        self.gradient_checkpointing = gradient_checkpointing
        self.checkpoint = checkpoint
        a = self.args
        self.tok_embeddings = nn.Embedding(a.vocab_size, a.dim)
        self.layers = nn.ModuleList(
            TransformerBlock(a, i, attn_backend) for i in range(a.n_layers))
        self.norm = RMSNorm(a.dim, a.norm_eps)
        self.output = nn.Linear(a.dim, a.vocab_size, bias=False)
        if compile is not None:
            self.compile_blocks(**compile)

    @property
    def dim(self) -> int:
        return self.args.dim

    def compile_blocks(self, **kwargs) -> None:
        """``torch.compile`` every block (fuses the small element-wise kernels of norms, rotary
        embeddings and adapters; compiled lazily at the first call, shapes dynamic by default).
        Optional: the eager model is the reference."""
        kwargs.setdefault('dynamic', True)
        for layer in self.layers:
            layer.compile(**kwargs)

    def forward(self, embeds: Tensor, positions: Optional[Tensor] = None,
                mask: Optional[Tensor] = None, ctx: Optional[RoutingContext] = None,
                cache: Optional[KVCache] = None) -> Tensor:
        """Run the blocks on input embeddings.

        Args:
            embeds: (B, T, D) input embeddings.
            positions: (B, T) rotary positions; default ``cache.length + arange(T)``.
            mask: bool (B or 1, 1, T, S), True where a query may attend a key; None = causal.
            ctx: Routing context for routed adapters.
            cache: KV cache to read and extend (inference).

        Returns:
            (B, T, D) hidden states after the final norm (apply :attr:`output` for logits).
        """
        b, t, _ = embeds.shape
        if positions is None:
            start = cache.length if cache is not None else 0
            positions = torch.arange(start, start + t, device=embeds.device).expand(b, t)
        cos, sin = rope_cos_sin(positions, self.args.head_dim, self.args.rope_theta)
        h = embeds
        ckpt = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for layer in self.layers:
            if ckpt:
                h = checkpoint(layer, h, cos, sin, mask, ctx, cache, use_reentrant=False)
            else:
                h = layer(h, cos, sin, mask, ctx, cache)
        if cache is not None:
            cache.length += t
        return self.norm(h)

    def load_pretrained(self, path: Optional[str] = None,
                        dtype: Optional[torch.dtype] = None) -> None:
        """Load base weights from a Meta or HF folder (default: :attr:`checkpoint`).

        Frugal: shards are memory-mapped and each tensor is cast once to ``dtype`` (default: the
        current parameter dtype) and assigned, so a model built on the meta device ends up with
        one copy of the weights. Adapter slots are untouched. Then quantises the block
        projections if :attr:`quantization` is set.
        """
        path = path or self.checkpoint
        if path is not None:
            from .checkpoints import load_llama_weights
            load_llama_weights(self, path, dtype)
        if self.quantization is not None:
            from .lowbit import quantize_llama
            quantize_llama(self, self.quantization)

    def new_cache(self, batch_size: int, max_len: int, dtype: Optional[torch.dtype] = None,
                  device: Optional[torch.device] = None) -> KVCache:
        """A zeroed KV cache for ``batch_size`` sequences of up to ``max_len`` positions."""
        ref = self.output.weight
        return KVCache(self.args.n_layers, batch_size, max_len, self.args.n_kv_heads,
                       self.args.head_dim, dtype or ref.dtype, device or ref.device)

    def adapter_slots(self, placement: str) -> List[AdapterSlot]:
        """Slots for placement ``'attn'`` (each block's ``adapter_attn``: its output feeds
        ``wq``/``wk``/``wv``), ``'ffn'`` (``adapter_ffn``: feeds ``w1``/``w3``) or ``'block'``
        (both)."""
        names = {'attn': [('adapter_attn', ('attention.wq', 'attention.wk', 'attention.wv'))],
                 'ffn': [('adapter_ffn', ('feed_forward.w1', 'feed_forward.w3'))]}
        names['block'] = names['attn'] + names['ffn']
        if placement not in names:
            raise ValueError(f"unknown LLM adapter placement {placement!r}; expected 'attn', "
                             "'ffn' or 'block'")
        return [AdapterSlot(blk, n, folds) for blk in self.layers for n, folds in names[placement]]

    @property
    def weights_path(self) -> Optional[str]:
        """The Meta or HF folder :meth:`load_pretrained` reads (None: random weights)."""
        return self.checkpoint

    def extra_repr(self) -> str:
        return ', '.join(f'{k}={v}' for k, v in asdict(self.args).items())

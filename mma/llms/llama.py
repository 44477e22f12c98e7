"""LLaMA (Meta layout) with explicit adapter slots and an optional KV cache: the one model of every
LLaMA-like family (:mod:`mma.llms.families`).

Module and parameter names mirror Meta's checkpoint keys (``tok_embeddings``, ``layers.{i}.attention.wq``,
``attention_norm``, ``feed_forward.w1``, ``ffn_norm``, ``norm``, ``output``) so Meta weights load as is.
"""
import math
import os
from dataclasses import asdict
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as recompute_in_backward

from mma.registry import LLMS
from mma.slots import AdapterSlot, base_state_dict, call_linear, empty_slots, layer_slots

from .args import LLaMAArgs, resolve_args
from .base import KVCache, LLMBackbone
from .flex import flex_attend, is_block_mask
from .rope import apply_rope, rope_cos_sin, rope_inv_freq  # noqa: F401  (re-exported)

ATTN_BACKENDS = ('sdpa', 'eager', 'xformers')
LINEAR_TARGETS = dict(q='attention.wq', k='attention.wk', v='attention.wv', o='attention.wo',
                      gate='feed_forward.w1', up='feed_forward.w3', down='feed_forward.w2')


class RMSNorm(nn.Module):

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return out.type_as(x) * self.weight


class Attention(nn.Module):

    def __init__(self, args: LLaMAArgs, layer_id: int, backend: str = 'sdpa'):
        super().__init__()
        self.layer_id = layer_id
        self.n_heads, self.n_kv_heads, self.head_dim = args.n_heads, args.n_kv_heads, args.head_dim
        self.backend = backend
        self.wq = nn.Linear(args.dim, args.n_heads * args.head_dim, bias=args.qkv_bias)
        self.wk = nn.Linear(args.dim, args.n_kv_heads * args.head_dim, bias=args.qkv_bias)
        self.wv = nn.Linear(args.dim, args.n_kv_heads * args.head_dim, bias=args.qkv_bias)
        self.wo = nn.Linear(args.n_heads * args.head_dim, args.dim, bias=False)
        empty_slots(self, 'wq', 'wk', 'wv', 'wo', 'prefix')  # linear slots, the prefix slot

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Optional[Tensor],
                cache: Optional[KVCache] = None, ctx=None) -> Tensor:
        """x: (B, T, D); mask: bool (B or 1, 1, T, S), True = may attend, a flex_attention
        BlockMask, or None = causal."""
        b, t, _ = x.shape
        q, k, v = (call_linear(self, n, x, ctx).view(b, t, -1, self.head_dim)
                   for n in ('wq', 'wk', 'wv'))  # (B, T, H or Hkv, Dh)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (B, H, T, Dh)
        if cache is not None:
            k, v = cache.update(self.layer_id, k, v)  # (B, Hkv, S, Dh)
        if self.n_kv_heads != self.n_heads:
            rep = self.n_heads // self.n_kv_heads
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        if mask is None and cache is not None and cache.length > 0:
            raise ValueError('Attention: decoding with a KV cache needs an explicit mask')
        out = self._attend(q, k, v, mask)  # (B, H, T, Dh)
        if self.adapter_prefix is not None:
            out = out + self.adapter_prefix(q, self.prefix_kv, ctx)
        return call_linear(self, 'wo', out.transpose(1, 2).reshape(b, t, -1), ctx)

    def prefix_kv(self, tokens: Tensor) -> Tuple[Tensor, Tensor]:
        """(P, D) tokens -> keys, values (1, H, P, Dh) by the frozen wk/wv, no rotary (a prefix)."""
        kv = (w(tokens).view(1, tokens.shape[0], self.n_kv_heads, self.head_dim).transpose(1, 2)
              for w in (self.wk, self.wv))
        return tuple(z.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1) for z in kv)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor]) -> Tensor:
        if is_block_mask(mask):  # packed rows (mma.models.packing), any backend: flex_attention
            return flex_attend(q, k, v, mask)
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
        empty_slots(self, 'w1', 'w2', 'w3')  # linear slots

    def forward(self, x: Tensor, ctx=None) -> Tensor:
        h = F.silu(call_linear(self, 'w1', x, ctx)) * call_linear(self, 'w3', x, ctx)
        return call_linear(self, 'w2', h, ctx)


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
                ctx=None, cache: Optional[KVCache] = None) -> Tensor:
        a = self.attention_norm(x)
        if self.adapter_attn is not None:
            a = self.adapter_attn(a, ctx)
        h = x + self.attention(a, cos, sin, mask, cache, ctx)
        f = self.ffn_norm(h)
        if self.adapter_ffn is not None:
            f = self.adapter_ffn(f, ctx)
        return h + self.feed_forward(f, ctx)


@LLMS.register_module()
class LLaMA(LLMBackbone):
    """The LLaMA decoder (implements :class:`~mma.llms.base.LLMBackbone`).

    Args:
        preset: A name from :data:`mma.llms.LLAMA_PRESETS` (e.g. ``'llama-7b'``; every
            registered family's presets, :mod:`mma.llms.families`); keyword hyperparameters
            override it.
        attn_backend: ``'sdpa'`` (default), ``'eager'`` (reference-style matmul-softmax) or
            ``'xformers'`` (CUDA only).
        gradient_checkpointing: Recompute each block in the backward pass (training only).
        checkpoint: Path of the base weights (Meta folder or HF folder). Its sizes
            (``params.json`` / ``config.json``) are read at construction — no preset needed; a
            preset or keyword that disagrees with them is an error — and its weights by
            :meth:`load_pretrained`, never at construction. With a preset, a folder that does not
            exist yet is allowed at construction when the sizes are given (a preset or keywords:
            counting the parameters of a config on a machine without the weights); they are then
            checked when it is loaded.
        quantization: ``'nf4'``, ``'fp4'`` or ``'int8'`` to quantise the block projections with
            bitsandbytes after loading (LaVIN-lite; CUDA only, see :mod:`mma.llms.lowbit`).
        compile: If given, keyword arguments of ``torch.compile`` for every block (see
            :meth:`compile_blocks`), e.g. ``dict(mode='reduce-overhead', dynamic=False)`` for CUDA
            graphs; pair that with ``mma_collate(pad_to_multiple_of=...)`` so that batches come
            in a few shapes. State-dict keys are unchanged.
        **kwargs: :class:`~mma.llms.args.LLaMAArgs` fields.
    """

    def __init__(self, preset: Optional[str] = None, attn_backend: str = 'sdpa',
                 gradient_checkpointing: bool = False, checkpoint: Optional[str] = None,
                 quantization: Optional[str] = None, compile: Optional[dict] = None,
                 **kwargs):
        super().__init__()
        from .checkpoints import read_llama_args
        from .lowbit import check_quantization
        from .families import PRESETS as LLAMA_PRESETS
        check_quantization(quantization)
        self.quantization = quantization
        if attn_backend not in ATTN_BACKENDS:
            raise ValueError(f'unknown attn_backend {attn_backend!r}; expected one of '
                             f'{ATTN_BACKENDS}')
        if preset is not None and preset not in LLAMA_PRESETS:
            raise KeyError(f'unknown LLaMA preset {preset!r}; known: '
                           f'{", ".join(sorted(LLAMA_PRESETS))}')
        self._size_sources = (preset, dict(LLAMA_PRESETS.get(preset, {})), dict(kwargs))
        sizes_given = preset is not None or bool(set(kwargs) & set(LLaMAArgs.__dataclass_fields__))
        read_now = checkpoint is not None and (not sizes_given or os.path.isdir(checkpoint))
        self.args = resolve_args(*self._size_sources,
                                 read_llama_args(checkpoint) if read_now else None, checkpoint)
        self.gradient_checkpointing = gradient_checkpointing
        self.checkpoint = checkpoint
        a = self.args
        self.tok_embeddings = nn.Embedding(a.vocab_size, a.dim)
        self.layers = nn.ModuleList(
            TransformerBlock(a, i, attn_backend) for i in range(a.n_layers))
        self.norm = RMSNorm(a.dim, a.norm_eps)
        self.output = nn.Linear(a.dim, a.vocab_size, bias=False)
        if a.tie_embeddings:
            # one matrix is both embedding and head: nn.Embedding's N(0, 1) would give logits of
            # scale sqrt(dim) (an initial loss of ~100 on the tiny demo); std 0.02 as HF's
            # Qwen2/LLaMA init. Only random weights see this: checkpoints load over it.
            nn.init.normal_(self.tok_embeddings.weight, std=0.02)
            self.output.weight = self.tok_embeddings.weight
        if compile is not None:
            self.compile_blocks(**compile)

    # ---------------------------------------------------------------- the backbone contract --
    @property
    def dim(self) -> int:
        return self.args.dim

    @property
    def vocab_size(self) -> int:
        return self.args.vocab_size

    @property
    def max_seq_len(self) -> int:
        return self.args.max_seq_len

    @property
    def num_layers(self) -> int:
        return self.args.n_layers

    @property
    def dtype(self) -> torch.dtype:
        return self.tok_embeddings.weight.dtype

    @property
    def weights_path(self) -> Optional[str]:
        return self.checkpoint

    def embed(self, input_ids: Tensor) -> Tensor:
        return self.tok_embeddings(input_ids)

    def head(self, hidden: Tensor) -> Tensor:
        return self.output(hidden)

    def forward(self, embeds: Tensor, positions: Optional[Tensor] = None,
                mask: Optional[Tensor] = None, ctx=None,
                cache: Optional[KVCache] = None) -> Tensor:
        """Run the blocks on input embeddings.

        Args:
            embeds: (B, T, D) input embeddings.
            positions: (B, T) rotary positions; default ``cache.length + arange(T)``.
            mask: bool (B or 1, 1, T, S), True where a query may attend a key; None = causal.
            ctx: Routing context, handed to the adapters in the slots.
            cache: KV cache to read and extend (inference).

        Returns:
            (B, T, D) hidden states after the final norm (:meth:`head` gives the logits).
        """
        b, t, _ = embeds.shape
        if positions is None:
            start = cache.length if cache is not None else 0
            positions = torch.arange(start, start + t, device=embeds.device).expand(b, t)
        cos, sin = rope_cos_sin(positions, self.args.head_dim, self.args.rope_theta,
                                self.args.rope_scaling)
        h = embeds
        ckpt = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for layer in self.layers:
            if ckpt:
                h = recompute_in_backward(layer, h, cos, sin, mask, ctx, cache,
                                          use_reentrant=False)
            else:
                h = layer(h, cos, sin, mask, ctx, cache)
        if cache is not None:
            cache.length += t
        return self.norm(h)

    def new_cache(self, batch_size: int, max_len: int, dtype: Optional[torch.dtype] = None,
                  device: Optional[torch.device] = None) -> KVCache:
        """A zeroed KV cache for ``batch_size`` sequences of up to ``max_len`` positions."""
        ref = self.output.weight
        return KVCache(self.args.n_layers, batch_size, max_len, self.args.n_kv_heads,
                       self.args.head_dim, dtype or ref.dtype, device or ref.device)

    def adapter_slots(self, placement: str) -> List[AdapterSlot]:
        """Slots of ``'attn'``/``'ffn'``/``'block'`` (before wq,wk,wv / w1,w3 / both),
        ``'linear:q,v'`` (LINEAR_TARGETS; ``'linear:all'``), ``'prefix[:N]'`` (top N), ``'all'``."""
        if placement == 'all':
            return sum((self.adapter_slots(p) for p in ('block', 'prefix', 'linear:all')), [])
        found = layer_slots(self.layers, placement, LINEAR_TARGETS, 'attention')
        if found is not None:  # a linear or prefix placement
            return found
        names = {'attn': [('adapter_attn', ('attention.wq', 'attention.wk', 'attention.wv'))],
                 'ffn': [('adapter_ffn', ('feed_forward.w1', 'feed_forward.w3'))]}
        names['block'] = names['attn'] + names['ffn']
        if placement not in names:
            raise ValueError(f"unknown LLM adapter placement {placement!r}; expected 'attn', "
                             "'ffn', 'block', 'linear:<targets>', 'prefix[:N]' or 'all'")
        return [AdapterSlot(blk, n, folds) for blk in self.layers for n, folds in names[placement]]

    def quantizable_linears(self) -> List[Tuple[nn.Module, str]]:
        """The attention and FFN projections of every block (LaVIN-lite's low-bit targets)."""
        return [(parent, name) for blk in self.layers
                for parent, names in ((blk.attention, ('wq', 'wk', 'wv', 'wo')),
                                      (blk.feed_forward, ('w1', 'w2', 'w3')))
                for name in names]

    def base_state_dict(self) -> dict:
        """The state dict without adapter tensors (what a Meta checkpoint holds)."""
        return base_state_dict(self, self.adapter_slots('all'))

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
            from .checkpoints import load_llama_weights, read_llama_args
            if path == self.checkpoint:  # sizes not checked at construction (no folder then)
                resolve_args(*self._size_sources, read_llama_args(path), path)
            load_llama_weights(self, path, dtype)
        if self.quantization is not None:
            from .lowbit import quantize_llama
            quantize_llama(self, self.quantization)

    # ------------------------------------------------------------------------------ extras --
    def set_attn_backend(self, backend: str) -> str:
        """Switch every block's attention to ``backend``; returns the previous one."""
        if backend not in ATTN_BACKENDS:
            raise ValueError(f'unknown attn_backend {backend!r}; expected one of {ATTN_BACKENDS}')
        old = self.layers[0].attention.backend
        for blk in self.layers:
            blk.attention.backend = backend
        return old

    def compile_blocks(self, **kwargs) -> None:
        """``torch.compile`` every block (fuses the small element-wise kernels of norms, rotary
        embeddings and adapters; compiled lazily at the first call, shapes dynamic by default).
        Optional: the eager model is the reference."""
        kwargs.setdefault('dynamic', True)
        for layer in self.layers:
            layer.compile(**kwargs)

    def extra_repr(self) -> str:
        return ', '.join(f'{k}={v}' for k, v in asdict(self.args).items())


def build_llama_from_folder(path: str, tokenizer: Optional[str] = None,
                            dtype: torch.dtype = torch.float32, **overrides) -> LLaMA:
    """An mma LLaMA with hyperparameters and weights from a Meta or HF folder.

    Args:
        path: The weights folder.
        tokenizer: ``tokenizer.model`` to check the vocabulary against (default: the one in the
            folder or its parent, if any).
        dtype: Dtype of the weights.
        **overrides: Other ``LLaMA`` arguments (``attn_backend``, ``max_seq_len``, ...).
    """
    from .checkpoints import check_tokenizer_vocab, find_tokenizer, load_llama_weights
    with torch.device('meta'):
        model = LLaMA(checkpoint=path, **overrides)
    tokenizer = tokenizer or find_tokenizer(path)
    if tokenizer is not None:
        check_tokenizer_vocab(tokenizer, model.vocab_size, f'checkpoint {path}')
    load_llama_weights(model, path, dtype)
    return model

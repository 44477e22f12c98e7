"""``flex_attention`` for block-sparse masks (packed rows, :mod:`mma.models.packing`).

On CUDA the call is compiled once (a fused kernel that skips the masked blocks); elsewhere it
runs eagerly (forward only: torch 2.14 has no flex_attention backward on CPU).
"""
import functools

from torch import Tensor


def is_block_mask(mask) -> bool:
    """Whether ``mask`` is a ``flex_attention`` BlockMask (not a tensor, not None)."""
    return mask is not None and not isinstance(mask, Tensor)


@functools.lru_cache(maxsize=None)
def _compiled():
    import torch
    from torch.nn.attention.flex_attention import flex_attention
    return torch.compile(flex_attention)


def flex_attend(q: Tensor, k: Tensor, v: Tensor, block_mask) -> Tensor:
    """q, k, v: (B, H, T, Dh) -> (B, H, T, Dh) under ``block_mask``."""
    from torch.nn.attention.flex_attention import flex_attention
    fn = _compiled() if q.is_cuda else flex_attention
    return fn(q, k, v, block_mask=block_mask)

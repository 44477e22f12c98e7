"""LLaMA-Adapter v1's zero-gated prefix (Zhang et al., 2023).

In each adapted attention layer a learned prefix of ``P`` tokens is projected by the layer's frozen
key/value projections (no rotary embedding); every query attends to it with its own softmax, and
the result, times a gate that starts at zero, is added to the attention output:
``out = attn(q, K, V) + g * softmax(q K_p^T / sqrt(Dh)) V_p``. At initialisation the adapted model
equals the frozen one. The gate is one scalar per layer and is not squashed, as PEFT's
``AdaptionPrompt`` (``adaption_gate``); the prefix is initialised ``N(0, 1)`` as there. The prefix
does not fold into frozen weights: it stays in a merged model.
"""
import math
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mma.registry import ADAPTERS

from .base import Adapter


@ADAPTERS.register_module()
class LLaMAAdapterPrefix(Adapter):
    """The gated prefix of one attention layer, called as ``prefix(q, kv, ctx)`` in a prefix slot.

    Args:
        in_features: Width D of the prefix tokens (the LLM's width, filled in).
        length: Prefix length P (LLaMA-Adapter: 10). The number of adapted layers is the
            placement's: ``'prefix:30'`` adapts the top 30 layers.
    """

    def __init__(self, in_features: int, length: int = 10):
        super().__init__()
        self.prompt = nn.Parameter(torch.randn(length, in_features))
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, q: Tensor, kv: Callable[[Tensor], Tuple[Tensor, Tensor]],
                ctx=None) -> Tensor:
        """q: (B, H, T, Dh) rotated queries -> (B, H, T, Dh), added to the attention output."""
        k, v = kv(self.prompt.to(q.dtype))  # (1, H, P, Dh) each
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, T, P)
        return (self.gate * F.softmax(scores.float(), dim=-1)).to(q.dtype) @ v

    def fold(self, routing: Optional[Tensor] = None) -> None:
        return None  # attention over a prefix is not a linear map of the frozen weights

"""IA³ (Liu et al., 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than
In-Context Learning"): learned vectors that rescale activations.

In a linear slot IA³ scales the layer's output, ``y = l * (W x + b)`` (keys and values:
targets ``k``, ``v``), or, for the FFN's down projection, its input, ``y = W (l * x) + b``: the
scaling of the FFN's inner activation. This is PEFT's ``IA3Layer`` (its ``feedforward_modules``
scale the input). Vectors start at one (the frozen model); merging folds them into the weight.
"""
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from mma.registry import ADAPTERS

from .base import Adapter, WeightFold, require_linear_slot


@ADAPTERS.register_module()
class IA3(Adapter):
    """An IA³ scaling vector in a linear slot, called as ``ia3(x, layer, ctx)``.

    Args:
        in_features, out_features: Widths of the frozen layer (filled in from the slot).
        target: The slot's target name (filled in from the slot).
        feedforward: Targets whose *input* is scaled (PEFT's ``feedforward_modules``); the
            output of the others is.
    """

    def __init__(self, in_features: int, out_features: Optional[int] = None,
                 target: Optional[str] = None, feedforward: Sequence[str] = ('down', )):
        super().__init__()
        out_features = require_linear_slot('IA3', out_features)
        self.scale_input = target in tuple(feedforward)
        self.ia3_l = nn.Parameter(torch.ones(in_features if self.scale_input else out_features))

    def forward(self, x: Tensor, layer: nn.Module, ctx=None) -> Tensor:
        if self.scale_input:
            return layer(x * self.ia3_l)
        return layer(x) * self.ia3_l

    def fold(self, routing: Optional[Tensor] = None) -> WeightFold:
        l_ = self.ia3_l

        def merged(w: Tensor, b: Optional[Tensor]):
            if self.scale_input:
                return w * l_.to(w)[None, :], b
            return w * l_.to(w)[:, None], None if b is None else b * l_.to(b)
        return merged

    def extra_repr(self) -> str:
        return f'scale_input={self.scale_input}'

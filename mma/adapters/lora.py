"""LoRA: a low-rank branch parallel to a frozen linear layer (Hu et al., 2021).

``y = W x + b + s * B A dropout(x)`` with ``s = alpha / r`` (or ``alpha / sqrt(r)``, rsLoRA,
Kalajdzievski 2023). ``A`` is Kaiming-uniform and ``B`` zero at initialisation, so the adapted
layer equals the frozen one, as in PEFT's ``tuners/lora/layer.py``; merging folds the branch into
the weight, ``W + s B A``. Parameter names (``lora_A.weight``, ``lora_B.weight``) are PEFT's.
"""
import math
from typing import Optional

import torch
from torch import Tensor, nn

from mma.registry import ADAPTERS

from .base import Adapter, WeightFold, require_linear_slot


def lora_scaling(rank: int, alpha: float, rslora: bool = False) -> float:
    """``alpha / r``, or ``alpha / sqrt(r)`` for rsLoRA (PEFT's ``use_rslora``)."""
    return alpha / math.sqrt(rank) if rslora else alpha / rank


def lora_pair(in_features: int, out_features: int, rank: int):
    """``A`` (r, in), Kaiming-uniform as ``nn.Linear`` (PEFT's default); ``B`` (out, r), zero."""
    if rank < 1:
        raise ValueError(f'LoRA rank must be >= 1, got {rank}')
    a = nn.Linear(in_features, rank, bias=False)
    nn.init.kaiming_uniform_(a.weight, a=math.sqrt(5))
    b = nn.Linear(rank, out_features, bias=False)
    nn.init.zeros_(b.weight)
    return a, b


@ADAPTERS.register_module()
class LoRA(Adapter):
    """A LoRA branch in a linear slot, called as ``lora(x, layer, ctx)``.

    Args:
        in_features, out_features: Widths of the frozen layer (filled in from the slot).
        rank: Rank r of ``B A``.
        alpha: Scale numerator (PEFT's ``lora_alpha``).
        dropout: Dropout on the branch's input (training only).
        rslora: Scale by ``alpha / sqrt(r)`` instead of ``alpha / r``.
        target: The slot's target name (``'q'``, ``'down'``, ...); LoRA treats all alike.
    """

    def __init__(self, in_features: int, out_features: Optional[int] = None, rank: int = 8,
                 alpha: float = 8.0, dropout: float = 0.0, rslora: bool = False,
                 target: Optional[str] = None):
        super().__init__()
        out_features = require_linear_slot(type(self).__name__, out_features)
        self.rank, self.alpha, self.rslora = rank, float(alpha), rslora
        self.scaling = lora_scaling(rank, alpha, rslora)
        self.lora_A, self.lora_B = lora_pair(in_features, out_features, rank)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def branch(self, x: Tensor) -> Tensor:
        """``s * B A dropout(x)``."""
        return self.lora_B(self.lora_A(self.dropout(x))) * self.scaling

    def forward(self, x: Tensor, layer: nn.Module, ctx=None) -> Tensor:
        return layer(x) + self.branch(x)

    def delta_weight(self) -> Tensor:
        """``s B A`` (out, in): what merging adds to the frozen weight."""
        return self.scaling * self.lora_B.weight @ self.lora_A.weight

    def fold(self, routing: Optional[Tensor] = None) -> WeightFold:
        delta = self.delta_weight()
        return lambda w, b: (w + delta.to(w), b)

    def extra_repr(self) -> str:
        return f'rank={self.rank}, alpha={self.alpha}, rslora={self.rslora}'


@ADAPTERS.register_module()
class DoRA(LoRA):
    """DoRA (Liu et al., 2024): LoRA's direction with a learned per-row magnitude ``m``.

    ``y = m / ||W + s B A||_row * (W x + s B A dropout(x)) + b``; the row norm is detached from the
    graph (the paper's section 4.3, as PEFT). ``m`` starts as the row norms of the frozen ``W``
    (= ``||W + s B A||`` at ``B = 0``: the adapted layer equals the frozen one). The frozen
    weights are loaded after the adapters are built, so ``m`` is taken from ``W`` at the first
    forward or fold; a checkpoint holding ``m`` marks it taken (``magnitude_set``). Merging gives
    ``W' = m / ||W + s B A||_row * (W + s B A)``, bias unchanged.

    Args: as :class:`LoRA`.
    """

    def __init__(self, in_features: int, out_features: Optional[int] = None, rank: int = 8,
                 alpha: float = 8.0, dropout: float = 0.0, rslora: bool = False,
                 target: Optional[str] = None):
        super().__init__(in_features, out_features, rank, alpha, dropout, rslora, target)
        self.magnitude = nn.Parameter(torch.ones(out_features))
        self.register_buffer('magnitude_set', torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def _take_magnitude(self, weight: Tensor) -> None:
        if not bool(self.magnitude_set):
            self.magnitude.copy_(weight.float().norm(dim=1).to(self.magnitude))
            self.magnitude_set.fill_(True)

    def _norm_scale(self, weight: Tensor) -> Tensor:
        """``m / ||W + s B A||_row`` (out,), the norm detached."""
        self._take_magnitude(weight)
        norm = (weight + self.delta_weight().to(weight)).norm(dim=1).detach()
        return self.magnitude / norm

    def forward(self, x: Tensor, layer: nn.Module, ctx=None) -> Tensor:
        scale = self._norm_scale(layer.weight)
        base = layer(x)
        xd = self.dropout(x)
        if xd is x:  # no dropout: W x is the layer's output without its bias (PEFT does the same)
            wx = base - layer.bias if layer.bias is not None else base
        else:
            wx = nn.functional.linear(xd, layer.weight)
        lora = self.lora_B(self.lora_A(xd)) * self.scaling
        return base + (scale - 1) * wx + scale * lora

    def fold(self, routing: Optional[Tensor] = None) -> WeightFold:
        def merged(w: Tensor, b: Optional[Tensor]):
            self._take_magnitude(w)
            v = w + self.delta_weight().to(w)
            return (self.magnitude.to(w) / v.norm(dim=1))[:, None] * v, b
        return merged

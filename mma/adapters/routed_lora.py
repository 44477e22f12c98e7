"""RoutedLoRA: Mixture-of-Modality Adaptation over LoRA experts.

``y = W x + b + s * sum_k w_k B_k A dropout(x)``: one shared down-projection ``A`` and K
up-projections ``B_k`` mixed by the modality router, as :class:`~mma.adapters.RoutedRepAdapter`
mixes its up-projections. The routing weights are constant per modality at inference (the LLM
routes by the modality token), so each modality's model folds into the frozen weight:
``W + s (sum_k w_k B_k) A``.
"""
from typing import Optional

import torch
from torch import Tensor, nn

from mma.registry import ADAPTERS, ROUTERS
from mma.routers.routing import RoutingContext

from .base import Adapter, WeightFold, require_linear_slot
from .lora import lora_pair, lora_scaling


@ADAPTERS.register_module()
class RoutedLoRA(Adapter):
    """LoRA with K routed up-projections, in a linear slot.

    Args:
        in_features, out_features, rank, alpha, dropout, rslora, target: As
            :class:`~mma.adapters.LoRA`.
        num_experts: Number of up-projections K.
        router: Config of the router (``in_features``, the linear's input width, and
            ``num_experts`` are filled in); it reads the linear's input.
    """

    def __init__(self, in_features: int, out_features: Optional[int] = None, rank: int = 8,
                 alpha: float = 8.0, dropout: float = 0.0, rslora: bool = False,
                 target: Optional[str] = None, num_experts: int = 2,
                 router: Optional[dict] = None):
        super().__init__()
        out_features = require_linear_slot('RoutedLoRA', out_features)
        self.scaling = lora_scaling(rank, alpha, rslora)
        self.lora_A, first = lora_pair(in_features, out_features, rank)
        self.experts = nn.ModuleList(
            [first] + [lora_pair(in_features, out_features, rank)[1]
                       for _ in range(num_experts - 1)])
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        router = dict(type='ModalityRouter') if router is None else dict(router)
        router.setdefault('in_features', in_features)
        router.setdefault('num_experts', num_experts)
        self.router = ROUTERS.build(router)

    def forward(self, x: Tensor, layer: nn.Module, ctx: Optional[RoutingContext] = None) -> Tensor:
        ctx = ctx if ctx is not None else RoutingContext()
        w = ctx.weights(self, self.router, x).to(x.dtype)  # (B, 1 or T, K)
        z = self.lora_A(self.dropout(x))  # (B, T, r)
        # all experts in one GEMM: (..., K * out) -> (..., K, out), then mixed by the weights
        ups = z @ torch.cat([e.weight for e in self.experts]).T
        ups = ups.unflatten(-1, (len(self.experts), -1))
        return layer(x) + self.scaling * (w[..., None] * ups).sum(-2)

    def delta_weight(self, weights: Tensor) -> Tensor:
        """``s (sum_k w_k B_k) A`` (out, in) for fixed routing ``weights`` (K,)."""
        up = sum(w * e.weight for w, e in zip(weights, self.experts))
        return self.scaling * up @ self.lora_A.weight

    def fold(self, routing: Optional[Tensor] = None) -> Optional[WeightFold]:
        """Foldable only for constant routing weights (None: per-token routing)."""
        if routing is None:
            return None
        delta = self.delta_weight(routing)
        return lambda w, b: (w + delta.to(w), b)

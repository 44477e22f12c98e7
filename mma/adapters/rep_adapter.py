"""RepAdapter and its routed form (the MM-Adapter of LaVIN)."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mma.registry import ADAPTERS, ROUTERS
from mma.routers.routing import RoutingContext

from .base import Adapter, Affine


class GroupedLinear(nn.Module):
    """A Linear layer with a block-diagonal weight of ``groups`` blocks (a grouped 1x1 conv).

    ``weight`` is ``(out_features, in_features // groups)`` like a Conv1d weight without its kernel
    dim: output block g reads input block g.
    """

    def __init__(self, in_features: int, out_features: int, groups: int = 1, bias: bool = True):
        super().__init__()
        if in_features % groups or out_features % groups:
            raise ValueError(f'GroupedLinear: in_features={in_features} and out_features='
                             f'{out_features} must be divisible by groups={groups}')
        self.in_features, self.out_features, self.groups = in_features, out_features, groups
        self.weight = nn.Parameter(torch.empty(out_features, in_features // groups))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        # One dense matmul with the block-diagonal weight: adapters are narrow (in = h = 8), so
        # the zeros cost nothing and one GEMM beats a batched per-group product.
        return F.linear(x, self.dense_weight(), self.bias)

    def dense_weight(self) -> Tensor:
        """The equivalent ``(out, in)`` block-diagonal weight."""
        g = self.groups
        return torch.block_diag(*self.weight.view(g, self.out_features // g, -1))

    def extra_repr(self) -> str:
        return f'in_features={self.in_features}, out_features={self.out_features}, groups={self.groups}'


def down_projection(in_features: int, hidden_dim: int) -> nn.Linear:
    """The bottleneck's down-projection d -> h: xavier-uniform weight, zero bias."""
    down = nn.Linear(in_features, hidden_dim)
    nn.init.xavier_uniform_(down.weight)
    nn.init.zeros_(down.bias)
    return down


def up_projection(hidden_dim: int, in_features: int, groups: int) -> GroupedLinear:
    """An up-projection h -> d with a block-diagonal weight, zero-initialised (identity adapter)."""
    up = GroupedLinear(hidden_dim, in_features, groups)
    nn.init.zeros_(up.weight)
    nn.init.zeros_(up.bias)
    return up


def bottleneck_affine(down: nn.Linear, up_w: Tensor, up_b: Tensor, scale: float) -> Affine:
    """``(M, c)`` of ``x + scale * (up_w @ down(x) + up_b)``: ``M = I + s B A``, ``c = s (B b_A + b_B)``."""
    a_w, a_b = down.weight, down.bias  # (h, d), (h,)
    eye = torch.eye(a_w.shape[1], dtype=a_w.dtype, device=a_w.device)
    return eye + scale * up_w @ a_w, scale * (up_w @ a_b + up_b)


@ADAPTERS.register_module()
class RepAdapter(Adapter):
    """``y = x + s * up(dropout(down(x)))`` with a grouped, zero-initialised up-projection.

    At initialisation ``y == x`` exactly. In eval mode the adapter is affine in ``x``
    (:meth:`fold`), so merging folds it into the Linear layers that read its output.

    Args:
        in_features: Width d of the adapted hidden state.
        hidden_dim: Bottleneck width h.
        groups: Groups of the up-projection (its weight has ``d * h / groups`` entries).
        scale: Output scale s.
        dropout: Dropout on the bottleneck (training only).
    """

    def __init__(self, in_features: int, hidden_dim: int = 8, groups: int = 2, scale: float = 1.0,
                 dropout: float = 0.1):
        super().__init__()
        self.scale = float(scale)
        self.down = down_projection(in_features, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.up = up_projection(hidden_dim, in_features, groups)

    def forward(self, x: Tensor, ctx: Optional[RoutingContext] = None) -> Tensor:
        return x + self.scale * self.up(self.dropout(self.down(x)))

    def affine(self) -> Affine:
        """``(M, c)`` with ``adapter(x) == x @ M.T + c`` in eval mode."""
        return bottleneck_affine(self.down, self.up.dense_weight(), self.up.bias, self.scale)

    def fold(self, routing: Optional[Tensor] = None) -> Affine:
        return self.affine()


@ADAPTERS.register_module()
class RoutedRepAdapter(Adapter):
    """RepAdapter with one shared down-projection and K up-projections mixed by a router.

    ``y = x + s * sum_k w_k * up_k(z)``, ``z = dropout(down(x))``, ``w = router(r)``, where the
    routing input ``r`` is chosen by the :class:`~mma.routers.RoutingContext` of the call: the
    modality token of the same sample in the LLM, each token itself in the ViT (or with no
    context). Built from the same pieces as :class:`RepAdapter` (down-projection, zero-initialised
    grouped up-projections, the same affine form per routing).

    Args:
        in_features, hidden_dim, groups, scale, dropout: As :class:`RepAdapter`.
        num_experts: Number of up-projections K.
        router: Config of the router (``in_features`` and ``num_experts`` are filled in).
    """

    def __init__(self, in_features: int, hidden_dim: int = 8, groups: int = 2, scale: float = 1.0,
                 dropout: float = 0.1, num_experts: int = 2,
                 router: Optional[dict] = None):
        super().__init__()
        self.scale = float(scale)
        self.down = down_projection(in_features, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.experts = nn.ModuleList(
            up_projection(hidden_dim, in_features, groups) for _ in range(num_experts))
        router = dict(type='ModalityRouter') if router is None else dict(router)
        router.setdefault('in_features', in_features)
        router.setdefault('num_experts', num_experts)
        self.router = ROUTERS.build(router)

    def forward(self, x: Tensor, ctx: Optional[RoutingContext] = None) -> Tensor:
        ctx = ctx if ctx is not None else RoutingContext()
        w = ctx.weights(self, self.router, x).to(x.dtype)  # (B, 1 or T, K)
        z = self.dropout(self.down(x))
        # all experts in one GEMM: (..., K * d) -> (..., K, d), then mixed by the weights
        weight = torch.cat([e.dense_weight() for e in self.experts])
        bias = torch.cat([e.bias for e in self.experts])
        ups = F.linear(z, weight, bias).unflatten(-1, (len(self.experts), -1))
        return x + self.scale * (w[..., None] * ups).sum(-2)

    def affine(self, weights: Optional[Tensor] = None) -> Affine:
        """``(M, c)`` for fixed routing ``weights`` of shape ``(K,)`` (one modality, one layer)."""
        if weights is None:
            raise ValueError('RoutedRepAdapter.affine needs the routing weights (K,) to fold; '
                             'they are constant per modality at inference')
        up_w = sum(w * e.dense_weight() for w, e in zip(weights, self.experts))
        up_b = sum(w * e.bias for w, e in zip(weights, self.experts))
        return bottleneck_affine(self.down, up_w, up_b, self.scale)

    def fold(self, routing: Optional[Tensor] = None) -> Optional[Affine]:
        """Foldable only for constant routing weights (None: per-token routing, not foldable)."""
        return None if routing is None else self.affine(routing)

"""Per-call routing state shared by the routed adapters of one model."""
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import torch
from torch import Tensor, nn


@dataclass
class RoutingContext:
    """Tells routed adapters where their routing input is, and keeps their weights.

    One context is made per forward call (training) or per generation (inference, where it lives
    with the KV cache); it is never stored on a module, so nothing leaks between calls.

    Args:
        token_index: ``(B,)`` column of each sample's routing token in the adapter input (the
            modality token in the LLM), or ``(B, T)``: the column of each token's own routing
            token (rows packing several samples, :mod:`mma.models.packing`). ``None`` routes
            every token by its own features (the ViT).
        cache: If given, router weights are stored here at the first call (prefill) and reused on
            later calls (one-token decode steps, whose input no longer holds the routing token).
            Pass an empty dict to read the weights of every routed adapter after a forward.
    """
    token_index: Optional[Tensor] = None
    cache: Optional[Dict[nn.Module, Tensor]] = None

    def weights(self, module: nn.Module, router: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        """Routing weights for ``module``, broadcastable against ``x[..., :1]``.

        Returns:
            ``(B, 1, K)`` when routing by a (B,) token index, else ``(B, T, K)``.
        """
        if self.cache is not None and module in self.cache:
            return self.cache[module]
        if self.token_index is None:
            w = router(x)  # (B, T, K)
        elif self.token_index.dim() == 2:  # packed rows: each token its own sample's token
            rows = torch.arange(x.shape[0], device=x.device)[:, None]
            w = router(x)[rows, self.token_index]  # (B, T, K)
        else:
            rows = torch.arange(x.shape[0], device=x.device)
            w = router(x[rows, self.token_index])[:, None, :]  # (B, 1, K)
        if self.cache is not None:
            self.cache[module] = w
        return w

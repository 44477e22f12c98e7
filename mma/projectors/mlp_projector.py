"""LLaVA-1.5's visual projector (``mm_projector_type='mlp2x_gelu'``)."""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from mma.registry import PROJECTORS


@PROJECTORS.register_module()
class MLPProjector(nn.Module):
    """Linear(vision width -> hidden) -> GELU -> Linear(hidden -> LLM dim), PyTorch's default init.

    LLaVA-1.5's ``mlp2x_gelu`` with ``hidden`` = the LLM dim (its default). LLaVA checkpoints hold
    it as ``model.mm_projector.0.*`` / ``.2.*``: those are ``fc1.*`` / ``fc2.*`` here.

    Args:
        in_features: Width of a vision feature (1024 for CLIP ViT-L/14-336).
        out_features: The LLM's embedding width.
        hidden: Hidden width; None: ``out_features``, as LLaVA.
    """

    def __init__(self, in_features: int, out_features: int, hidden: Optional[int] = None):
        super().__init__()
        hidden = out_features if hidden is None else hidden
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))

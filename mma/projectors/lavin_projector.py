"""LaVIN's visual projector (``adapter_proj`` in the original LaVIN code, ``lavin/model.py``)."""
import torch.nn.functional as F
from torch import Tensor, nn

from mma.registry import PROJECTORS


@PROJECTORS.register_module()
class LaVINProjector(nn.Module):
    """Linear(vision width -> hidden) -> SiLU -> Linear(hidden -> LLM dim), xavier init, zero bias.

    The original LaVIN code's ``adapter_proj`` (``conv_A``/``conv_B``, see
    :mod:`mma.models.adapter_checkpoint`); parameter names ``fc1``/``fc2``.

    Args:
        in_features: Width of a vision feature.
        out_features: The LLM's embedding width.
        hidden: Hidden width (128 in LaVIN).
    """

    def __init__(self, in_features: int, out_features: int, hidden: int = 128):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)
        for fc in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.silu(self.fc1(x)))


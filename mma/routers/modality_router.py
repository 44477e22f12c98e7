"""The modality router of MMA."""
import torch
from torch import Tensor, nn

from mma.registry import ROUTERS


@ROUTERS.register_module()
class ModalityRouter(nn.Module):
    """``softmax(Linear(d -> K)(r) / T)``: soft weights over K adapter paths.

    Args:
        in_features: Width d of the routing input.
        num_experts: Number of paths K.
        temperature: Softmax temperature T (LaVIN: 10 for 7B, 5 for 13B).
    """

    def __init__(self, in_features: int, num_experts: int = 2, temperature: float = 10.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'ModalityRouter temperature must be > 0, got {temperature}')
        self.temperature = float(temperature)
        self.linear = nn.Linear(in_features, num_experts)

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.linear(x) / self.temperature, dim=-1)

    def extra_repr(self) -> str:
        return f'temperature={self.temperature}'

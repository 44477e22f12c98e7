"""Rotary position embeddings as Meta's LLaMA applies them (interleaved pairs), with LLaMA-3.1's
``llama3`` frequency scaling."""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor


def rope_inv_freq(head_dim: int, theta: float, scaling: Optional[dict] = None,
                  device=None) -> Tensor:
    """Rotary inverse frequencies (Dh/2,), with LLaMA-3.1's ``llama3`` scaling if given: long
    wavelengths are divided by ``factor``, short ones kept, the band between interpolated."""
    inv_freq = 1.0 / (theta**(torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    if scaling is None:
        return inv_freq
    factor = scaling['factor']
    low, high = scaling.get('low_freq_factor', 1.0), scaling.get('high_freq_factor', 4.0)
    old_len = scaling.get('original_max_position_embeddings', 8192)
    wavelen = 2 * math.pi / inv_freq
    smooth = (old_len / wavelen - low) / (high - low)
    scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    mid = (wavelen <= old_len / low) & (wavelen >= old_len / high)
    return torch.where(mid, (1 - smooth) * inv_freq / factor + smooth * inv_freq, scaled)


def rope_cos_sin(positions: Tensor, head_dim: int, theta: float,
                 scaling: Optional[dict] = None) -> Tuple[Tensor, Tensor]:
    """cos/sin tables for integer ``positions`` (B, T): each ``(B, T, 1, head_dim // 2)``, fp32."""
    inv_freq = rope_inv_freq(head_dim, theta, scaling, positions.device)
    angles = positions.float()[..., None] * inv_freq  # (B, T, Dh/2)
    return angles.cos()[:, :, None], angles.sin()[:, :, None]


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate interleaved pairs ``(x[2i], x[2i+1])`` as Meta's complex-number RoPE does."""
    xr = x.float().unflatten(-1, (-1, 2))  # (B, T, H, Dh/2, 2)
    x0, x1 = xr[..., 0], xr[..., 1]
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return out.flatten(-2).type_as(x)

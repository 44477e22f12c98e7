"""The attention rule of the modality token, in one place for training and decoding.

Token 0 of every LaVIN sequence is the modality token; it acts only through the routers (whose input
is its hidden state), so no later position attends to it and it attends only to itself (the mask
of the original LaVIN code, ``lavin/model.py``, github.com/luogen1996/LaVIN). Rows may be
left-padded (generation): ``pad[i]`` padding columns come before row ``i``'s modality token.
Training uses ``pad = 0``.
"""
import torch
from torch import Tensor


def modality_mask(pad: Tensor, q_start: int, q_len: int, k_len: int) -> Tensor:
    """Bool ``(B, 1, Tq, S)`` mask (True = may attend) for queries at columns
    ``[q_start, q_start + q_len)`` over keys ``[0, k_len)``.

    A query attends causally to the real keys of its row except the modality token (column
    ``pad``), which attends only to itself. Padding queries attend to themselves, so that no row is
    fully masked (that would give NaN keys/values in a KV cache).
    """
    dev = pad.device
    q = torch.arange(q_start, q_start + q_len, device=dev)[None, :, None]  # (1, Tq, 1)
    k = torch.arange(k_len, device=dev)[None, None, :]  # (1, 1, S)
    p = pad[:, None, None]  # (B, 1, 1)
    mask = (k <= q) & (k > p)
    mask |= (k == q) & (q <= p)  # the modality token and padding: themselves only
    return mask[:, None]


def positions(pad: Tensor, start: int, length: int) -> Tensor:
    """(B, T) rotary positions of columns ``[start, start + length)``: 0 at each row's first
    real column (the modality token)."""
    cols = torch.arange(start, start + length, device=pad.device)[None]
    return (cols - pad[:, None]).clamp(min=0)

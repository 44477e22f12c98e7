"""Sequence packing: several assembled samples in one row, each attending only to itself.

A padded batch holds one sample per row and pads every row to the longest; a packed batch puts
whole samples one after another into rows of at most ``max_tokens`` positions (first fit,
longest first) and runs the LLM on those rows. Each sample keeps its own layout
(:mod:`mma.sequence`): its modality token first, its visual tokens where
:meth:`~mma.models.LaVIN.assemble` put them, rotary positions restarting at 0. Attention is
block-diagonal and causal, with the modality-token rule of :mod:`mma.models.masks` inside each
block; routed adapters read each token's own sample's modality token (a per-token
``RoutingContext.token_index``). Labels travel with their tokens and every sample's first
position (the modality token) has none, so next-token targets never cross a sample boundary:
summed losses and gradients equal the padded batch's (``tests/models/test_packing.py``).

The attention mask is a boolean (R, 1, W, W) tensor for PyTorch's SDPA, or, on CUDA, a
``flex_attention`` :class:`~torch.nn.attention.flex_attention.BlockMask` that skips the blocks
outside the diagonal. torch 2.14's ``flex_attention`` has no backward on CPU (measured), so CPU
training uses SDPA's boolean mask.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from mma.routers.routing import RoutingContext
from mma.sequence import IGNORE_INDEX

MASK_KINDS = ('auto', 'dense', 'flex')


def plan_rows(lengths: Sequence[int], max_tokens: int) -> List[List[int]]:
    """First-fit decreasing: the sample indices of each row, rows of at most ``max_tokens``
    positions (a longer sample gets a row of its own, as long as itself)."""
    if int(max_tokens) < 1:
        raise ValueError(f'max_tokens must be >= 1, got {max_tokens}')
    rows: List[List[int]] = []
    room: List[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-int(lengths[i]), i)):
        n = int(lengths[i])
        for r, free in enumerate(room):
            if n <= free:
                rows[r].append(i)
                room[r] -= n
                break
        else:
            rows.append([i])
            room.append(max(int(max_tokens) - n, 0))
    return rows


@dataclass
class Packing:
    """Where each sample's positions went.

    Attributes:
        row, col: (B, T) long: packed row and column of each position of the padded layout
            (valid where ``real``).
        real: (B, T) bool: the position belongs to its sample (not padding).
        positions: (R, W) rotary positions, 0 at each sample's modality token.
        start: (R, W) column of each token's modality token (padding: its own column).
        segment: (R, W) sample index of each token, -1 on padding.
    """
    row: Tensor
    col: Tensor
    real: Tensor
    positions: Tensor
    start: Tensor
    segment: Tensor

    @property
    def shape(self) -> Tuple[int, int]:
        return tuple(self.positions.shape)

    def pack(self, x: Tensor, fill=0) -> Tensor:
        """(B, T, ...) padded layout -> (R, W, ...) packed rows (``fill`` on padding)."""
        out = x.new_full(self.shape + tuple(x.shape[2:]), fill)
        return out.index_put((self.row[self.real], self.col[self.real]), x[self.real])

    def unpack(self, y: Tensor, fill=0) -> Tensor:
        """(R, W, ...) packed rows -> (B, T, ...) padded layout (``fill`` on padding)."""
        out = y.new_full(tuple(self.real.shape) + tuple(y.shape[2:]), fill)
        return out.index_put((self.real,), y[self.row[self.real], self.col[self.real]])

    def dense_mask(self) -> Tensor:
        """Bool (R, 1, W, W), True = may attend: same sample, causal, and the modality token
        attends only to itself and nobody else to it; padding attends to itself only."""
        w = self.shape[1]
        q = torch.arange(w, device=self.start.device)[None, :, None]  # (1, W, 1)
        k = q.transpose(1, 2)  # (1, 1, W)
        seg, start = self.segment, self.start
        same = seg[:, :, None] == seg[:, None, :]
        return (same & (k <= q) & ((k > start[:, :, None]) | (k == q)))[:, None]

    def block_mask(self):
        """The same rule as :meth:`dense_mask` as a ``flex_attention`` BlockMask."""
        from torch.nn.attention.flex_attention import create_block_mask
        seg, start = self.segment, self.start

        def rule(b, h, q, k):
            return (seg[b, q] == seg[b, k]) & (k <= q) & ((k > start[b, q]) | (k == q))
        r, w = self.shape
        return create_block_mask(rule, r, None, w, w, device=seg.device)

    def mask(self, kind: str = 'auto'):
        """``'dense'`` (SDPA, any device), ``'flex'`` (BlockMask) or ``'auto'``: flex on CUDA
        when torch has it, dense otherwise (flex has no backward on CPU)."""
        if kind not in MASK_KINDS:
            raise ValueError(f'packing mask {kind!r}; expected one of {MASK_KINDS}')
        if kind == 'auto':
            kind = 'flex' if self.start.is_cuda and flex_available() else 'dense'
        return self.block_mask() if kind == 'flex' else self.dense_mask()


def flex_available() -> bool:
    try:
        from torch.nn.attention import flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


def plan_packing(lengths: Tensor, width: int, max_tokens: int) -> Packing:
    """Pack samples of ``lengths`` (B,) positions each (padded layout of ``width`` columns)."""
    dev = lengths.device
    rows = plan_rows(lengths.tolist(), max_tokens)
    b = lengths.shape[0]
    row_of, off_of = torch.zeros(b, dtype=torch.long), torch.zeros(b, dtype=torch.long)
    used = []
    for r, members in enumerate(rows):
        off = 0
        for i in members:
            row_of[i], off_of[i] = r, off
            off += int(lengths[i])
        used.append(off)
    row_of, off_of = row_of.to(dev), off_of.to(dev)
    w = max(used)
    j = torch.arange(width, device=dev)[None]  # (1, T)
    real = j < lengths[:, None]  # (B, T)
    row = row_of[:, None].expand(b, width)
    col = off_of[:, None] + j
    segment = torch.full((len(rows), w), -1, dtype=torch.long, device=dev)
    segment[row[real], col[real]] = torch.arange(b, device=dev)[:, None].expand(b, width)[real]
    start = torch.arange(w, device=dev).expand(len(rows), w).clone()
    start[row[real], col[real]] = off_of[:, None].expand(b, width)[real]
    positions = torch.arange(w, device=dev)[None] - start
    return Packing(row, col, real, positions, start, segment)


def packed_hidden_states(llm, embeds: Tensor, labels: Optional[Tensor], lengths: Tensor,
                         max_tokens: int, mask: str = 'auto'
                         ) -> Tuple[Tensor, Optional[Tensor], Packing]:
    """Run ``llm`` on the samples of a padded assembled batch, packed.

    Args:
        llm: The LLM backbone (``forward(embeds, positions, mask, ctx)``).
        embeds: (B, T, D) assembled embeddings (:meth:`~mma.models.LaVIN.assemble`).
        labels: (B, T) assembled labels or None.
        lengths: (B,) real positions of each row (modality token + text + visual tokens).
        max_tokens: Positions per packed row.
        mask: See :meth:`Packing.mask`.

    Returns:
        ``(hidden (R, W, D), labels (R, W) or None, packing)``.
    """
    pk = plan_packing(lengths, embeds.shape[1], max_tokens)
    ctx = RoutingContext(token_index=pk.start)  # (R, W): each token's own modality token
    hidden = llm(pk.pack(embeds), positions=pk.positions, mask=pk.mask(mask), ctx=ctx)
    packed_labels = pk.pack(labels, IGNORE_INDEX) if labels is not None else None
    return hidden, packed_labels, pk


def padding_fraction(lengths: Union[Sequence[int], Tensor], max_tokens: int) -> Tuple[float, float]:
    """Fraction of positions that are padding: ``(padded to the longest, packed)``."""
    lengths = [int(n) for n in lengths]
    real = sum(lengths)
    rows = plan_rows(lengths, max_tokens)
    width = max(sum(lengths[i] for i in r) for r in rows)
    return 1 - real / (len(lengths) * max(lengths)), 1 - real / (len(rows) * width)

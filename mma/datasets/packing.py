"""The packing collate: a training batch whose samples the model packs into shared rows."""
from typing import Optional, Sequence

from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS

from mma.registry import FUNCTIONS

from .collate import mma_collate

PACK_MASKS = ('auto', 'dense', 'flex')


def mma_pack_collate(batch: Sequence[dict], max_tokens: int = 512, mask: str = 'auto',
                     pad_to_multiple_of: Optional[int] = None) -> dict:
    """:func:`~mma.datasets.mma_collate`, and ask the model to pack the batch's samples into
    rows of at most ``max_tokens`` positions for the training loss (:mod:`mma.models.packing`).

    The samples, their labels and the loss normaliser are those of the padded batch: packing
    changes which positions share a row (block-diagonal attention, per-sample rotary positions
    and routing), not the loss or the gradients. The model makes the rows, because a sample's
    length depends on the visual tokens the model inserts. Prediction and ``mode='tensor'``
    ignore packing. Use as ``train_dataloader.collate_fn=dict(type='mma_pack_collate',
    max_tokens=1024)``; ``max_tokens`` at least the longest sample (``max_len``) keeps every
    sample whole in one row (a longer one gets a row of its own).

    Args:
        batch: :class:`~mma.datasets.TokenizeForLaVIN` outputs.
        max_tokens: Positions per packed row.
        mask: ``'auto'`` (flex_attention's BlockMask on CUDA, SDPA's boolean mask otherwise),
            ``'dense'`` or ``'flex'``.
        pad_to_multiple_of: As for :func:`~mma.datasets.mma_collate`.

    Returns:
        :func:`~mma.datasets.mma_collate`'s batch with ``inputs['pack_max_tokens']`` and
        ``inputs['pack_mask']``.
    """
    if int(max_tokens) < 1:
        raise ValueError(f'mma_pack_collate: max_tokens must be >= 1, got {max_tokens}')
    if mask not in PACK_MASKS:
        raise ValueError(f'mma_pack_collate: mask {mask!r}; expected one of {PACK_MASKS}')
    out = mma_collate(batch, pad_to_multiple_of)
    out['inputs'].update(pack_max_tokens=int(max_tokens), pack_mask=mask)
    return out


FUNCTIONS.register_module(module=mma_pack_collate)
# mmengine's Runner looks collate functions up in its root registry (see mma_collate).
MMENGINE_FUNCTIONS.register_module(module=mma_pack_collate, force=True)

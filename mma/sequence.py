"""LaVIN's sequence layout, stated once: what a sample's positions are and how rows are batched.

The model sees, per sample (Luo et al., "Cheap and Quick", NeurIPS 2023, and its code,
github.com/luogen1996/LaVIN; docs/extending.md states the contract)::

    [modality token] [BOS] "Image: "    v1 .. vk  prompt answer [EOS]    image samples
    [modality token] [BOS] "Image: N/A"           prompt answer [EOS]    text-only samples

The data pipeline tokenises the text (:func:`pack`) and says where the visual tokens go
(``visual_pos``, an index into the text); the model inserts the k visual tokens there and
prepends the modality token (:meth:`mma.models.LaVIN.assemble`). Labels are the answer and EOS
tokens, :data:`IGNORE_INDEX` elsewhere. :func:`pad_rows` is the one batching of such rows
(:func:`mma.datasets.mma_collate` and LaVIN's choice scoring use it). A model built with
``modality_in_sequence=False`` (LLaVA-1.5 kept as it is) sees the rows without the modality token
(:mod:`mma.models.modality`).

This module imports torch only: data workers, the model and applications all use it.
"""
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor

#: Label of a position without a target (cross entropy skips it).
IGNORE_INDEX = -100
#: Positions before the text: the modality token (index 0, the router's input).
MODALITY_POSITIONS = 1
#: Filler for the padded tail of ``input_ids``: any id of the vocabulary does (no label, after
#: every real token, causal attention); ``lengths`` says where each row ends, never the id.
PAD_ID = 0


def num_positions(text_len, has_image, num_visual_tokens: int,
                  modality_positions: int = MODALITY_POSITIONS):
    """Positions the model sees: modality token + text (+ k visual tokens for image samples).

    Works on ints and on (B,) tensors alike. ``modality_positions=0``: a model whose modality
    token is not in the sequence (``LaVIN(modality_in_sequence=False)``).
    """
    if isinstance(has_image, Tensor):
        has_image = has_image.bool().long()
    return modality_positions + text_len + num_visual_tokens * has_image


def pack(bos: Sequence[int], prefix: Sequence[int], prompt: Sequence[int],
         answer: Sequence[int], has_image: bool) -> dict:
    """One sample's text row: ``bos prefix prompt answer`` with labels on ``answer`` only.

    Args:
        bos: ``[BOS]`` or ``[]`` (a tokenizer without BOS).
        prefix: The ``"Image: "`` / ``"Image: N/A"`` ids.
        prompt, answer: Their ids (``answer`` ends with EOS; empty for prediction).
        has_image: Image sample: the visual tokens go right after ``bos prefix``.

    Returns:
        ``dict(input_ids, labels, has_image, visual_pos)``; ``labels`` None without an answer.
    """
    head = list(bos) + list(prefix) + list(prompt)
    answer = list(answer)
    return dict(input_ids=torch.tensor(head + answer, dtype=torch.long),
                labels=(torch.tensor([IGNORE_INDEX] * len(head) + answer, dtype=torch.long)
                        if answer else None),
                has_image=bool(has_image),
                visual_pos=len(bos) + len(prefix) if has_image else 0)


def pad_rows(rows: Sequence[dict], pad_to_multiple_of: Optional[int] = None) -> Dict[str, Tensor]:
    """Right-pad :func:`pack` rows into ``input_ids``, ``labels``, ``has_image``, ``visual_pos``
    and ``lengths`` (each row's real length); ``labels`` is None when no row has any.

    ``pad_to_multiple_of=N`` rounds the padded length up to a multiple of N.
    """
    lengths = torch.tensor([len(x['input_ids']) for x in rows], dtype=torch.long)
    longest = int(lengths.max())
    if pad_to_multiple_of is not None:
        if int(pad_to_multiple_of) < 1:
            raise ValueError(f'pad_to_multiple_of must be >= 1, got {pad_to_multiple_of}')
        longest = -(-longest // int(pad_to_multiple_of)) * int(pad_to_multiple_of)
    ids = torch.full((len(rows), longest), PAD_ID, dtype=torch.long)
    for i, x in enumerate(rows):
        ids[i, :len(x['input_ids'])] = x['input_ids']
    labels = None
    if all(x.get('labels') is not None for x in rows):
        labels = torch.full((len(rows), longest), IGNORE_INDEX, dtype=torch.long)
        for i, x in enumerate(rows):
            labels[i, :len(x['labels'])] = x['labels']
    elif any(x.get('labels') is not None for x in rows):
        raise ValueError('a batch mixes samples with and without labels')
    return dict(input_ids=ids, labels=labels,
                has_image=torch.tensor([bool(x['has_image']) for x in rows]),
                visual_pos=torch.tensor([int(x['visual_pos']) for x in rows]),
                lengths=lengths)


def row_text(inputs: dict, i: int) -> List[int]:
    """The real text ids of row ``i`` of a padded batch (``inputs['lengths']`` says its end)."""
    return inputs['input_ids'][i, :int(inputs['lengths'][i])].tolist()


def text_lengths(inputs: dict) -> Tensor:
    """(B,) real text length of each row: ``inputs['lengths']`` of
    :func:`~mma.datasets.mma_collate` (the padding id is an ordinary token id, e.g. 0 is ``!``
    in LLaMA-3's vocabulary: it tells nothing about where a row ends)."""
    if inputs.get('lengths') is None:
        raise ValueError("inputs['lengths'] is missing: batch samples with mma_collate, or pass "
                         'the (B,) text length of each row')
    return inputs['lengths']

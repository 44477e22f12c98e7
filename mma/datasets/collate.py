"""Batching: pad to the longest sample of the batch (optionally rounded up to a bucket)."""
from typing import List, Optional, Sequence

import torch
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS

from mma.registry import FUNCTIONS

from .transforms import IGNORE_INDEX

# Filler for the padded tail of ``input_ids``: any id of the vocabulary does (no label, after
# every real token, causal attention); ``lengths`` says where each row ends, never the id.
PAD_ID = 0


def mma_collate(batch: Sequence[dict], pad_to_multiple_of: Optional[int] = None) -> dict:
    """Collate :class:`~mma.datasets.TokenizeForLaVIN` outputs into LaVIN's ``inputs``.

    ``input_ids`` are right-padded with :data:`PAD_ID` and ``labels`` with -100 to the longest
    sample of the batch (not to ``max_len``), and ``lengths`` holds each row's real length;
    ``images`` stacks the images of the image samples in batch order (None when there are
    none). Use as ``collate_fn=dict(type='mma_collate')``.

    ``pad_to_multiple_of=N`` rounds the padded length up to a multiple of N, so that batches come
    in a few fixed shapes: what ``torch.compile`` without dynamic shapes and CUDA graphs
    (``mode='reduce-overhead'``) need to reuse their compiled code. Padding changes no loss or
    prediction (pad positions have no label and come after every real token).

    Samples scored by choice log-likelihood (TruthfulQA) carry ``choice_ids`` (one token-id list
    per choice); the batch then holds them as ``inputs['choice_ids']``, a list per sample.

    Returns:
        ``dict(inputs=dict(input_ids, labels, has_image, visual_pos, images, lengths
        [, choice_ids]), data_samples=[meta, ...])``; ``labels`` is None for prediction batches.
    """
    inputs = [b['inputs'] for b in batch]
    lengths = torch.tensor([len(x['input_ids']) for x in inputs], dtype=torch.long)
    longest = int(lengths.max())
    if pad_to_multiple_of is not None:
        if int(pad_to_multiple_of) < 1:
            raise ValueError(f'mma_collate: pad_to_multiple_of must be >= 1, got '
                             f'{pad_to_multiple_of}')
        longest = -(-longest // int(pad_to_multiple_of)) * int(pad_to_multiple_of)
    ids = torch.full((len(batch), longest), PAD_ID, dtype=torch.long)
    for i, x in enumerate(inputs):
        ids[i, :len(x['input_ids'])] = x['input_ids']
    labels = None
    if all(x['labels'] is not None for x in inputs):
        labels = torch.full((len(batch), longest), IGNORE_INDEX, dtype=torch.long)
        for i, x in enumerate(inputs):
            labels[i, :len(x['labels'])] = x['labels']
    elif any(x['labels'] is not None for x in inputs):
        raise ValueError('mma_collate: a batch mixes samples with and without labels')
    has_image = torch.tensor([bool(x['has_image']) for x in inputs])
    images: List[torch.Tensor] = [x['image'] for x in inputs if x['has_image']]
    if any(im is None for im in images):
        raise ValueError('mma_collate: an image sample has no image (put LoadLaVINImage before '
                         'TokenizeForLaVIN in the pipeline)')
    out = dict(input_ids=ids, labels=labels, has_image=has_image,
               visual_pos=torch.tensor([int(x['visual_pos']) for x in inputs]),
               images=torch.stack(images) if images else None, lengths=lengths)
    with_choices = [x.get('choice_ids') is not None for x in inputs]
    if all(with_choices):
        out['choice_ids'] = [x['choice_ids'] for x in inputs]
    elif any(with_choices):
        raise ValueError('mma_collate: a batch mixes samples with and without choice_ids')
    return dict(inputs=out, data_samples=[b['data_samples'] for b in batch])


FUNCTIONS.register_module(module=mma_collate)
# mmengine's Runner looks collate functions up with ``FUNCTIONS.get`` on its root registry, which
# does not search scope children: register there too (the name is unique to mma).
MMENGINE_FUNCTIONS.register_module(module=mma_collate, force=True)

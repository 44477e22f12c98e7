"""Batching: pad to the longest sample of the batch (optionally rounded up to a bucket)."""
from typing import List, Optional, Sequence

import torch
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS

from mma.registry import FUNCTIONS
from mma.sequence import PAD_ID, pad_rows  # noqa: F401  (PAD_ID: re-exported)

from .transforms import LoadLaVINImage

#: How a batch is predicted (:meth:`mma.models.LaVIN.predict`): generation, or scoring each
#: sample's ``choice_ids`` by log-likelihood. A dataset declares it (``PromptDataset.PREDICTION``).
PREDICTIONS = ('generate', 'score_choices')


def mma_collate(batch: Sequence[dict], pad_to_multiple_of: Optional[int] = None) -> dict:
    """Collate :class:`~mma.datasets.TokenizeForLaVIN` outputs into LaVIN's ``inputs``.

    ``input_ids`` are right-padded with :data:`~mma.sequence.PAD_ID` and ``labels`` with
    ``IGNORE_INDEX`` to the longest sample of the batch (not to ``max_len``), and ``lengths``
    holds each row's real length (:func:`mma.sequence.pad_rows`); ``images`` stacks the images
    of the image samples in batch order (None when there are none). Use as
    ``collate_fn=dict(type='mma_collate')``.

    ``pad_to_multiple_of=N`` rounds the padded length up to a multiple of N, so that batches come
    in a few fixed shapes: what ``torch.compile`` without dynamic shapes and CUDA graphs
    (``mode='reduce-overhead'``) need to reuse their compiled code. Padding changes no loss or
    prediction (pad positions have no label and come after every real token).

    Samples scored by choice log-likelihood (TruthfulQA) carry ``choice_ids`` (one token-id list
    per choice) and ``prediction='score_choices'``; the batch holds them as
    ``inputs['choice_ids']`` (a list per sample) and ``inputs['prediction']``.

    Returns:
        ``dict(inputs=dict(input_ids, labels, has_image, visual_pos, images, lengths
        [, choice_ids, prediction]), data_samples=[meta, ...])``; ``labels`` is None for
        prediction batches.
    """
    inputs = [b['inputs'] for b in batch]
    try:
        out = pad_rows(inputs, pad_to_multiple_of)
    except ValueError as err:
        raise ValueError(f'mma_collate: {err}') from None
    images: List[torch.Tensor] = [x['image'] for x in inputs if x['has_image']]
    if any(im is None for im in images):
        raise ValueError('mma_collate: an image sample has no image (put LoadLaVINImage before '
                         'TokenizeForLaVIN in the pipeline)')
    out['images'] = torch.stack(images) if images else None
    with_choices = [x.get('choice_ids') is not None for x in inputs]
    if all(with_choices):
        out['choice_ids'] = [x['choice_ids'] for x in inputs]
    elif any(with_choices):
        raise ValueError('mma_collate: a batch mixes samples with and without choice_ids')
    modes = {x.get('prediction', 'generate') for x in inputs}
    if len(modes) > 1:
        raise ValueError(f'mma_collate: a batch mixes prediction modes {sorted(modes)}')
    if modes != {'generate'}:
        out['prediction'] = modes.pop()
    return dict(inputs=out, data_samples=[b['data_samples'] for b in batch])


def collate_question(pipeline: Sequence, prompt: str, img_path: Optional[str] = None,
                     image: Optional[torch.Tensor] = None, **fields) -> dict:
    """A question as a batch of one: ``pipeline`` (its transforms, e.g. a config's test pipeline
    or :func:`~mma.datasets.prediction_pipeline`) on ``dict(prompt, img_path, ...)``, then
    :func:`mma_collate`. Config pipelines, ``tools/chat.py`` and the web demo all go this way.

    ``image``: an already loaded (3, H, W) image for ``img_path`` (skips reading it again).
    """
    return mma_collate([run_pipeline(pipeline, prompt, img_path, image, **fields)])


def run_pipeline(pipeline: Sequence, prompt: str, img_path: Optional[str] = None,
                 image: Optional[torch.Tensor] = None, **fields) -> dict:
    """One question through ``pipeline`` (before collation); see :func:`collate_question`."""
    results = dict(fields, prompt=prompt, img_path=img_path)
    for t in pipeline:
        if image is not None and isinstance(t, LoadLaVINImage):  # the image is loaded already
            results['image'] = image
            continue
        results = t(results)
    return results


FUNCTIONS.register_module(module=mma_collate)
# mmengine's Runner looks collate functions up with ``FUNCTIONS.get`` on its root registry, which
# does not search scope children: register there too (the name is unique to mma).
MMENGINE_FUNCTIONS.register_module(module=mma_collate, force=True)

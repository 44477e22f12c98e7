"""Prompt encoding and batching for evaluation and chat (the data contract of
:meth:`mma.models.LaVIN.forward`): ``[BOS] "Image: " prompt`` with the visual tokens inserted
after ``"Image: "``, or ``[BOS] "Image: N/A" prompt`` for text-only samples."""
from typing import List, Optional, Sequence, Tuple

import torch

from mma.registry import FUNCTIONS

IMAGE_PREFIX = 'Image: '
NO_IMAGE_PREFIX = 'Image: N/A'


def encode_prompt(tokenizer, prompt: str, has_image: bool,
                  answer: Optional[str] = None) -> Tuple[List[int], int, List[int]]:
    """Token ids of one sample, where its visual tokens go, and its labels.

    Returns ``(input_ids, visual_pos, labels)``; with ``answer`` the ids end in
    ``answer [EOS]`` and labels hold those tokens (-100 elsewhere), else labels are all -100.
    """
    prefix = tokenizer.encode(IMAGE_PREFIX if has_image else NO_IMAGE_PREFIX)
    ids = [tokenizer.bos_id] + prefix + tokenizer.encode(prompt)
    labels = [-100] * len(ids)
    if answer is not None:
        ans = tokenizer.encode(answer) + [tokenizer.eos_id]
        ids, labels = ids + ans, labels + ans
    return ids, 1 + len(prefix), labels


@FUNCTIONS.register_module()
def collate_prompts(items: Sequence[dict]) -> dict:
    """Batch dataset items into ``dict(inputs=..., data_samples=[...])``.

    Each item has ``input_ids`` (list), ``visual_pos``, ``has_image``, ``image`` (tensor or None),
    optionally ``labels`` and ``choice_ids``, and ``data_sample`` (a dict of metadata).
    """
    b = len(items)
    width = max(len(it['input_ids']) for it in items)
    ids = torch.zeros(b, width, dtype=torch.long)
    labels = torch.full((b, width), -100, dtype=torch.long)
    for i, it in enumerate(items):
        n = len(it['input_ids'])
        ids[i, :n] = torch.as_tensor(it['input_ids'])
        if it.get('labels') is not None:
            labels[i, :n] = torch.as_tensor(it['labels'])
    has_image = torch.tensor([bool(it['has_image']) for it in items])
    imgs = [it['image'] for it in items if it['has_image']]
    inputs = dict(
        input_ids=ids, labels=labels, has_image=has_image,
        visual_pos=torch.tensor([int(it['visual_pos']) for it in items]),
        images=torch.stack(imgs) if imgs else None,
        lengths=torch.tensor([len(it['input_ids']) for it in items]))
    if any('choice_ids' in it for it in items):
        inputs['choice_ids'] = [it['choice_ids'] for it in items]
    return dict(inputs=inputs, data_samples=[dict(it.get('data_sample', {})) for it in items])

"""Benchmark: a training step on packed rows against the same batch padded, in one process.

The batch has ScienceQA-like lengths (:func:`scienceqa_like_lengths`): most prompts short, a long
tail of lecture-length contexts, so padding to the longest sample wastes most positions. Both
modes run the same model on the same samples; the losses agree (packing changes no loss,
``tests/models/test_packing.py``). Figures are printed; nothing here asserts a time.
"""
from typing import Dict, Optional

import torch

from mma.apps.benchmark import build, make_batch, mma_loss, sizes, time_train_step
from mma.models.packing import padding_fraction, plan_rows
from mma.sequence import num_positions


def scienceqa_like_lengths(n: int, max_len: int = 512, seed: int = 0) -> torch.Tensor:
    """(n,) text lengths: log-normal with median 110 tokens and sigma 0.6, clipped to
    [32, max_len] - an assumed shape (LaVIN's ScienceQA prompts: question, options and an
    optional context/lecture; most short, some near the 512 limit), not measured data."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g) * 0.6 + torch.log(torch.tensor(110.0))
    return x.exp().round().long().clamp(32, max_len)


def run_packing_benchmark(size_name: str = 'medium', device: str = 'cpu', batch_size: int = 16,
                          max_tokens: int = 512, steps: int = 3, warmup: int = 1,
                          seed: int = 0, mask: str = 'auto',
                          amp: Optional[str] = None) -> Dict[str, dict]:
    """Time the padded and the packed training step of ``size_name`` on one ScienceQA-like batch
    (text lengths of :func:`scienceqa_like_lengths`, half the samples with an image).

    Returns:
        ``{'padded': r, 'packed': r}``, each with ``seconds``, ``loss``, ``peak_bytes``,
        ``real_tokens_per_s``, ``padded_fraction`` and ``rows``.
    """
    size = sizes()[size_name]
    model = build(size, device)
    k = model.num_visual_tokens
    text = scienceqa_like_lengths(batch_size, size.max_seq_len - 1 - k, seed)
    # half the samples with an image (ScienceQA: about half), answers the last 10% of each text
    batch = make_batch(size, batch_size, batch_size // 2, 0.9, model.llm.vocab_size, device,
                       seed, lengths=text)
    real_lengths = num_positions(text, batch['has_image'].cpu(), k)
    real = int(real_lengths.sum())
    padded_frac, packed_frac = padding_fraction(real_lengths.tolist(), max_tokens)
    rows = len(plan_rows(real_lengths.tolist(), max_tokens))
    amp_dtype = getattr(torch, amp) if amp else None
    out = {}
    for mode in ('padded', 'packed'):
        b = dict(batch)
        if mode == 'packed':
            b.update(pack_max_tokens=max_tokens, pack_mask=mask)
        r = time_train_step(model, b, mma_loss, steps, warmup, amp_dtype)
        r.update(real_tokens_per_s=real / r['seconds'],
                 padded_fraction=padded_frac if mode == 'padded' else packed_frac,
                 rows=batch_size if mode == 'padded' else rows)
        out[mode] = r
    return out

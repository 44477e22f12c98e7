"""The reference LaVIN training step written out with the reference code's own kernels.

:func:`mma.apps.benchmark.reference_loss` reproduces *what* the original code computes per step
(padding to ``max_seq_len``, the zero image, eager attention, the full-vocabulary head) but runs it
through mma's modules. This module reproduces also *how* the original computes it, on an mma
model's weights, so that the benchmark can put a figure on the whole difference:

- the ViT runs sequence-first (``NLD -> LND``, a non-contiguous view) through the functional path
  of ``nn.MultiheadAttention`` (``F.multi_head_attention_forward``), every block on every token;
- every adapter is a ``Conv1d`` with kernel 1 over the transposed activations (``(B, D, T)``),
  the up-projection a grouped ``Conv1d``, each expert of a routed adapter a separate one;
- rotary embeddings multiply complex numbers (``torch.view_as_complex`` / ``torch.polar``);
- visual tokens are inserted by a per-sample ``torch.cat`` loop;
- attention is matmul-softmax with an additive float mask, logits cover every position.

The semantics are mma's where the reference is wrong (docs/weights.md, on ViT routing): each ViT
token is routed by its own features, not by the tokens of batch item 0. With that, the loss equals
:func:`mma.apps.benchmark.reference_loss` and mma's own loss (``tests/test_benchmark.py``), which also
pins mma's numerics to the reference formulation. Used by benchmarks only.
"""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mma.llms.reference_port import reference_llama_logits
from mma.sequence import IGNORE_INDEX, num_positions


def pad_text(ids: Tensor, labels: Tensor, num_visual_tokens: int,
             max_seq_len: int) -> Tuple[Tensor, Tensor]:
    """Text ids and labels padded (or cut) the reference's way, so that modality token + text +
    visual tokens fill ``max_seq_len``."""
    words = max_seq_len - num_positions(0, True, num_visual_tokens)  # text positions
    pad = max(words - ids.shape[1], 0)
    return (F.pad(ids, (0, pad))[:, :words],
            F.pad(labels, (0, pad), value=IGNORE_INDEX)[:, :words])


def with_zero_images(images: Tensor, has_image: Tensor) -> Tensor:
    """One image per sample, as the reference feeds the ViT: text-only samples get a zero image.
    ``images`` holds the images of the image samples, in batch order."""
    out = images.new_zeros(has_image.shape[0], *images.shape[1:])
    out[has_image.bool()] = images
    return out


def _conv_adapter(adapter: nn.Module, x: Tensor, weights: Optional[Tensor]) -> Tensor:
    """A (routed) RepAdapter the reference way. x (A, C, D) with the adapter mixing along D; the
    reference transposes to (A, D, C) and runs kernel-1 convolutions along C. ``weights``
    (A, C or 1, K) routing weights, None for a plain RepAdapter."""
    xt = x.transpose(1, 2)
    z = adapter.dropout(F.conv1d(xt, adapter.down.weight[..., None], adapter.down.bias))
    ups = adapter.experts if hasattr(adapter, 'experts') else [adapter.up]
    out = xt
    for k, up in enumerate(ups):
        y = F.conv1d(z, up.weight[..., None], up.bias, groups=up.groups) * adapter.scale
        out = out + (y if weights is None else y * weights[..., k][:, None, :].to(y.dtype))
    return out.transpose(1, 2).contiguous()


def _adapt_by_modality_token(adapter: nn.Module, x: Tensor) -> Tensor:
    """An LLM adapter the reference way, routed by the modality token (position 0)."""
    router = getattr(adapter, 'router', None)
    return _conv_adapter(adapter, x, router(x[:, :1]) if router is not None else None)


def _vit_block(blk: nn.Module, x: Tensor) -> Tensor:
    """One CLIP residual block on sequence-first x (L, N, W), adapters in ``ln_1``/``ln_2``."""
    h = blk.ln_1(x) if not hasattr(blk.ln_1, 'adapter') else _adapted(blk.ln_1, x)
    mha = blk.attn
    attn = F.multi_head_attention_forward(
        h, h, h, mha.embed_dim, mha.num_heads, mha.in_proj_weight, mha.in_proj_bias, None, None,
        False, mha.dropout, mha.out_proj.weight, mha.out_proj.bias, training=mha.training,
        need_weights=False)[0]
    x = x + blk.ls_1(attn)
    h = blk.ln_2(x) if not hasattr(blk.ln_2, 'adapter') else _adapted(blk.ln_2, x)
    return x + blk.ls_2(blk.mlp(h))


def _adapted(mod: nn.Module, x: Tensor) -> Tensor:
    """``AdaptedModule``: the wrapped module, then its adapter, routed per token."""
    h = mod.module(x)
    router = getattr(mod.adapter, 'router', None)
    return _conv_adapter(mod.adapter, h, router(h) if router is not None else None)


def encode_images(model, images: Tensor) -> Tensor:
    """The reference ViT: every block on every token, sequence-first; CLS features -> projector."""
    vit = model.vision
    t = vit.tower
    x = t.conv1(images.to(t.conv1.weight.dtype))
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = t.class_embedding.to(x.dtype) + x.new_zeros(x.shape[0], 1, x.shape[-1])
    x = t.ln_pre(torch.cat([cls, x], dim=1) + t.positional_embedding.to(x.dtype))
    x = x.permute(1, 0, 2)  # NLD -> LND
    feats: List[Tensor] = []
    for i, blk in enumerate(vit.blocks[:vit.out_indices[-1] + 1]):
        x = _vit_block(blk, x)
        if i in vit.out_indices:
            feats.append(x.permute(1, 0, 2)[:, :1])
    feats = torch.cat(feats, dim=1)
    return model.projector(feats.to(model.projector.fc1.weight.dtype))


def reference_code_loss(model, batch: dict, max_seq_len: int = 512) -> Tensor:
    """The training loss of one batch computed the way the reference code computes it.

    ``batch`` as :func:`mma.apps.benchmark.make_batch` makes it (text ids with the image prefix,
    ``visual_pos``, images of the image samples only, labels with ``IGNORE_INDEX``).
    """
    llm = model.llm
    ids, labels, has_image = batch['input_ids'], batch['labels'], batch['has_image'].bool()
    b = ids.shape[0]
    k = model.num_visual_tokens
    ids, labels = pad_text(ids, labels, k, max_seq_len)
    visual = None
    if model.vision is not None:
        visual = encode_images(model, with_zero_images(batch['images'], has_image))
    emb = llm.embed(ids)
    rows, row_labels = [], []
    for i in range(b):  # the reference's per-sample insertion loop
        if visual is not None and has_image[i]:
            p = int(batch['visual_pos'][i])
            rows.append(torch.cat([emb[i, :p], visual[i].to(emb.dtype), emb[i, p:]]))
            row_labels.append(torch.cat([labels[i, :p], labels.new_full((k, ), IGNORE_INDEX),
                                         labels[i, p:]]))
        else:
            rows.append(torch.cat([emb[i], emb.new_zeros(k, emb.shape[-1])]))
            row_labels.append(torch.cat([labels[i], labels.new_full((k, ), IGNORE_INDEX)]))
    mod = model.modality_embedding(has_image.long()).to(emb.dtype)[:, None]
    h = torch.cat([mod, torch.stack(rows)], dim=1)
    labels = torch.cat([labels.new_full((b, 1), IGNORE_INDEX), torch.stack(row_labels)], dim=1)
    t = h.shape[1]
    mask = torch.full((1, 1, t, t), float('-inf'), device=h.device).triu(1)
    mask[:, :, 1:, 0] = float('-inf')  # no position > 0 sees the modality token
    logits = reference_llama_logits(llm, h, mask.type_as(h), _adapt_by_modality_token)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                           labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX)

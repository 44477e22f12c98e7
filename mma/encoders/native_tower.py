"""Running open_clip's own ``VisionTransformer`` (OpenAI CLIP, LAION ViT-H, ...) block by block.

Its sequence is ``[CLS, patch_1 .. patch_N]`` (B, 1+N, W); blocks are ``ResidualAttentionBlock`` s
(``ln_1, attn, ls_1, ln_2, mlp, ls_2``). The functions here mirror :mod:`.timm_tower`.
"""
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NUM_PREFIX = 1  # the class token is always in the sequence


def width(tower: nn.Module) -> int:
    return tower.transformer.width


def blocks(tower: nn.Module) -> nn.ModuleList:
    return tower.transformer.resblocks


def num_patches(tower: nn.Module) -> int:
    return tower.grid_size[0] * tower.grid_size[1]


def pooled_shape(tower: nn.Module) -> Tuple[int, int]:
    """``(count, width)`` of what ``tower(images)`` returns per image (its pooled output)."""
    out_width = tower.proj.shape[1] if tower.proj is not None else tower.ln_post.normalized_shape[0]
    pool = tower.attn_pool
    count = pool.query.shape[0] if pool is not None and tower.pool_type == 'none' else 1
    return count, out_width


def slot_names(placement: str) -> List[Tuple[str, Tuple[str, ...]]]:
    """``'attn'`` adapts ``ln_1`` (its output feeds the attention's packed ``in_proj``), ``'ffn'``
    adapts ``ln_2`` (feeds ``mlp.c_fc``), ``'block'`` both."""
    names: Dict[str, list] = {'attn': [('ln_1', ('attn', ))],  # nn.MultiheadAttention: in_proj
                              'ffn': [('ln_2', ('mlp.c_fc', ))]}
    names['block'] = names['attn'] + names['ffn']
    if placement not in names:
        raise ValueError(f"unknown ViT adapter placement {placement!r}; expected 'attn', "
                         "'ffn' or 'block'")
    return names[placement]


# Linear-slot targets of a residual block. The attention's projections are not among them:
# nn.MultiheadAttention keeps q/k/v packed in one in_proj_weight parameter (not a layer to put a
# slot around) and its own forward reads out_proj's weight directly.
LINEAR_TARGETS = {'up': 'mlp.c_fc', 'down': 'mlp.c_proj'}


def block_tokens(tower: nn.Module, images: Tensor, indices: Sequence[int],
                 cls_only: bool = False) -> List[Tensor]:
    """The sequence (B, 1+N, W) after each block in ``indices`` (sorted), running no block after
    the last. ``cls_only``: only the CLS token of the last one is wanted (it is then (B, 1, W))."""
    x = tower.conv1(images.to(tower.conv1.weight.dtype))  # (B, W, g, g)
    x = x.flatten(2).transpose(1, 2)  # (B, g*g, W)
    cls = tower.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + tower.positional_embedding.to(x.dtype)  # (B, 1+g*g, W)
    x = tower.ln_pre(tower.patch_dropout(x))
    outs = []
    last = indices[-1]
    for i, blk in enumerate(blocks(tower)[:last + 1]):
        x = _run_block(blk, x, cls_only=cls_only and i == last)
        if i in indices:
            outs.append(x)
    return outs


def _is_standard_block(blk: nn.Module) -> bool:
    """An open_clip ``ResidualAttentionBlock`` with batch-first self-attention."""
    attn = getattr(blk, 'attn', None)
    return (isinstance(attn, nn.MultiheadAttention) and attn.batch_first and
            attn._qkv_same_embed_dim and attn.in_proj_weight is not None and
            not hasattr(blk, 'ln_1_kv') and all(hasattr(blk, n) for n in ('ln_1', 'ls_1',
                                                                         'ln_2', 'mlp', 'ls_2')))


def _self_attention(mha: nn.MultiheadAttention, h: Tensor, cls_only: bool) -> Tensor:
    """``mha(h, h, h)`` with its own weights, computed batch-first: nn.MultiheadAttention turns
    batch-first input sequence-first, and its input projection then runs as a batched matmul over
    every position (a weight copy per token) - several times slower on CPU."""
    e, heads = mha.embed_dim, mha.num_heads
    w, b = mha.in_proj_weight, mha.in_proj_bias
    if cls_only:  # only the CLS query is needed; keys and values from every token
        q = F.linear(h[:, :1], w[:e], None if b is None else b[:e])
        k, v = F.linear(h, w[e:], None if b is None else b[e:]).chunk(2, dim=-1)
    else:
        q, k, v = F.linear(h, w, b).chunk(3, dim=-1)
    q, k, v = (z.unflatten(-1, (heads, -1)).transpose(1, 2) for z in (q, k, v))  # (B, H, L, Dh)
    dropout = mha.dropout if mha.training else 0.0
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
    return mha.out_proj(out.transpose(1, 2).flatten(2))


def _run_block(blk: nn.Module, x: Tensor, cls_only: bool = False) -> Tensor:
    """One residual block on (B, L, W). ``cls_only``: only the CLS output is wanted, so only the
    CLS query is computed and only the CLS token goes through the MLP (returns (B, 1, W))."""
    if not _is_standard_block(blk):  # a block layout we do not know: run it whole
        return blk(x)[:, :1] if cls_only else blk(x)
    h = blk.ln_1(x)  # (adapters, if inserted, act here on every token: keys/values need them)
    x = (x[:, :1] if cls_only else x) + blk.ls_1(_self_attention(blk.attn, h, cls_only))
    return x + blk.ls_2(blk.mlp(blk.ln_2(x)))

"""Running open_clip's timm-based towers (``TimmModel``: SigLIP, EVA02, ...) block by block.

The trunk is a timm ``VisionTransformer`` or ``Eva``; its sequence is ``[prefix tokens, patches]``
where the prefix holds the class token (if the model has one; SigLIP has none) and any register
tokens. timm's own ``forward_intermediates`` runs the blocks (it knows EVA's rotary embedding);
the functions here mirror :mod:`.native_tower`.
"""
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn

from mma.slots import unwrap


def is_timm_tower(tower: nn.Module) -> bool:
    return hasattr(tower, 'trunk')


def width(tower: nn.Module) -> int:
    return tower.trunk.embed_dim


def blocks(tower: nn.Module) -> nn.ModuleList:
    return tower.trunk.blocks


def num_prefix(tower: nn.Module) -> int:
    return int(getattr(tower.trunk, 'num_prefix_tokens', 0))


def has_cls(tower: nn.Module) -> bool:
    return getattr(tower.trunk, 'cls_token', None) is not None


def num_patches(tower: nn.Module) -> int:
    grid = tower.trunk.patch_embed.grid_size
    return grid[0] * grid[1]


def pooled_shape(tower: nn.Module) -> Tuple[int, int]:
    """``(count, width)`` of what ``tower(images)`` returns per image: the width of open_clip's
    projection head if it has one, else of the trunk's head (a Linear, or none at all)."""
    linears = [m for m in tower.head.modules() if isinstance(m, nn.Linear)]
    if not linears and isinstance(tower.trunk.get_classifier(), nn.Linear):
        linears = [tower.trunk.get_classifier()]
    return 1, linears[-1].out_features if linears else tower.trunk.num_features


def slot_names(tower: nn.Module, placement: str) -> List[Tuple[str, Tuple[str, ...]]]:
    """``'attn'`` adapts ``norm1`` (feeds ``attn.qkv``, or EVA's ``attn.q/k/v_proj``), ``'ffn'``
    adapts ``norm2`` (feeds ``mlp.fc1``, or EVA's SwiGLU ``mlp.fc1_g/fc1_x``), ``'block'`` both."""
    blk = blocks(tower)[0]

    def linears(*paths: str) -> Tuple[str, ...]:
        found = tuple(p for p in paths if isinstance(_get(blk, p), nn.Linear))
        return found if found in (paths[:1], paths[1:]) else ()  # fused, or every unfused one

    names = {}
    if isinstance(_get(blk, 'norm1'), nn.LayerNorm):
        names['attn'] = [('norm1', linears('attn.qkv', 'attn.q_proj', 'attn.k_proj',
                                           'attn.v_proj'))]
    if isinstance(_get(blk, 'norm2'), nn.LayerNorm):
        names['ffn'] = [('norm2', linears('mlp.fc1', 'mlp.fc1_g', 'mlp.fc1_x'))]
    if len(names) == 2:
        names['block'] = names['attn'] + names['ffn']
    if placement not in ('attn', 'ffn', 'block'):
        raise ValueError(f"unknown ViT adapter placement {placement!r}; expected 'attn', "
                         "'ffn' or 'block'")
    if placement not in names:
        raise NotImplementedError(
            f'adapters cannot go into the blocks of the timm tower {type(tower.trunk).__name__} '
            f'({type(blk).__name__} has no LayerNorm norm1/norm2 to wrap): set vit_adapter=None')
    return names[placement]


def linear_targets(tower: nn.Module) -> Dict[str, str]:
    """Linear-slot targets of a block: ``qkv`` (fused, ViT/SigLIP) or EVA's ``q``/``k``/``v``,
    ``o``, ``up`` and ``down`` (EVA's SwiGLU also ``gate``), where the block has that Linear."""
    blk = blocks(tower)[0]
    candidates = {'qkv': ['attn.qkv'], 'q': ['attn.q_proj'], 'k': ['attn.k_proj'],
                  'v': ['attn.v_proj'], 'o': ['attn.proj'], 'gate': ['mlp.fc1_g'],
                  'up': ['mlp.fc1', 'mlp.fc1_x'], 'down': ['mlp.fc2']}
    return {t: p for t, paths in candidates.items() for p in paths
            if isinstance(_get(blk, p), nn.Linear)}


def block_tokens(tower: nn.Module, images: Tensor, indices: Sequence[int],
                 cls_only: bool = False) -> List[Tensor]:
    """The sequence (B, P+N, W) after each block in ``indices`` (P prefix tokens first), running
    no block after the last. ``cls_only`` is accepted for symmetry with the native tower."""
    dtype = next(tower.trunk.parameters()).dtype
    inter = tower.trunk.forward_intermediates(
        images.to(dtype), indices=list(indices), return_prefix_tokens=True, norm=False,
        stop_early=True, output_fmt='NLC', intermediates_only=True)
    # [(patches, prefix)] when the trunk has prefix tokens, [patches] when it has none (SigLIP)
    return [torch.cat([x[1], x[0]], dim=1) if isinstance(x, tuple) else x for x in inter]


def _get(module: nn.Module, path: str):
    """The submodule at ``path``; one wrapped by an adapter counts as the module it wraps."""
    try:
        m = module.get_submodule(path)
    except AttributeError:
        return None
    return unwrap(m)

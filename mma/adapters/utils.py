"""Helpers around adapters: the trainable set a model declares, and folding into frozen layers."""
from typing import Iterable, Set

import torch
from torch import nn

from .base import Affine, adapter_trainable_names


def declared_trainable_names(root: nn.Module, modules: Iterable[nn.Module]) -> Set[str]:
    """State-dict names (relative to ``root``) of the tensors that train: the declared tensors
    (:func:`~mma.adapters.base.adapter_trainable_names`) of each module in ``modules``.

    One set serves both ``requires_grad`` (:func:`set_trainable`) and what goes into a
    checkpoint, so the two cannot disagree.
    """
    paths = {id(m): n for n, m in root.named_modules(remove_duplicate=False)}
    out = set()
    for m in modules:
        if id(m) not in paths:
            raise KeyError(f'{type(m).__name__} declared trainable is not a submodule of '
                           f'{type(root).__name__}')
        prefix = paths[id(m)] + '.' if paths[id(m)] else ''
        out.update(prefix + n for n in adapter_trainable_names(m))
    return out


def set_trainable(root: nn.Module, names: Set[str]) -> None:
    """``requires_grad`` exactly for the parameters in ``names`` (trainable tensors are never
    inside a wrapped module, so their parameter names are their state-dict names)."""
    for name, p in root.named_parameters():
        p.requires_grad_(name in names)


@torch.no_grad()
def merge_into_linear(linear: nn.Linear, affine: Affine) -> nn.Linear:
    """Fold an affine map ``x -> M x + c`` that feeds ``linear`` into a new Linear layer.

    ``linear(M x + c) = (W M) x + (W c + b)``. LLaMA's projections have no bias, so the result
    gains one.
    """
    m, c = affine
    w = linear.weight
    merged = nn.Linear(w.shape[1], w.shape[0], bias=True, device=w.device, dtype=w.dtype)
    merged.weight.copy_((w.double() @ m.double()).to(w.dtype))
    bias = w.double() @ c.double()
    if linear.bias is not None:
        bias = bias + linear.bias.double()
    merged.bias.copy_(bias.to(w.dtype))
    merged.requires_grad_(False)
    return merged


@torch.no_grad()
def fold_into(parent: nn.Module, path: str, affine: Affine) -> None:
    """Fold ``affine`` into the layer at ``path`` under ``parent``: an ``nn.Linear`` is replaced
    by its merged copy; an ``nn.MultiheadAttention`` gets a merged packed input projection (new
    tensors: the original module's are untouched)."""
    owner_path, _, name = path.rpartition('.')
    owner = parent.get_submodule(owner_path) if owner_path else parent
    layer = getattr(owner, name)
    if isinstance(layer, nn.Linear):
        setattr(owner, name, merge_into_linear(layer, affine))
        return
    if isinstance(layer, nn.MultiheadAttention) and layer.in_proj_weight is not None:
        tmp = nn.Linear(layer.embed_dim, 3 * layer.embed_dim, device='meta')
        tmp.weight, tmp.bias = layer.in_proj_weight, layer.in_proj_bias
        merged = merge_into_linear(tmp, affine)
        layer.in_proj_weight = nn.Parameter(merged.weight, requires_grad=False)
        layer.in_proj_bias = nn.Parameter(merged.bias, requires_grad=False)
        return
    raise TypeError(f'cannot fold an adapter into {path} ({type(layer).__name__}): expected '
                    'nn.Linear or nn.MultiheadAttention with a packed in_proj')

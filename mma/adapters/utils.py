"""Helpers around adapters: the trainable set a model declares, and folding into frozen layers."""
from typing import Iterable, Set, Union

import torch
from torch import nn

from mma.slots import AdaptedModule

from .base import Affine, WeightFold, adapter_trainable_names


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
def apply_weight_fold(linear: nn.Linear, fold: WeightFold) -> nn.Linear:
    """A new Linear layer with the weights ``fold(weight, bias)`` of a linear-slot adapter
    (computed in float64, stored in the layer's dtype)."""
    w, b = linear.weight, linear.bias
    new_w, new_b = fold(w.double(), None if b is None else b.double())
    merged = nn.Linear(w.shape[1], w.shape[0], bias=new_b is not None, device=w.device,
                       dtype=w.dtype)
    merged.weight.copy_(new_w.to(w.dtype))
    if new_b is not None:
        merged.bias.copy_(new_b.to(w.dtype))
    merged.requires_grad_(False)
    return merged


@torch.no_grad()
def fold_into(parent: nn.Module, path: str, fold: Union[Affine, WeightFold]) -> None:
    """Fold an adapter's declared ``fold`` into the layer at ``path`` under ``parent``.

    An affine map ``(M, c)`` (a hidden-state adapter) feeds the layer: an ``nn.Linear`` is
    replaced by its merged copy; an ``nn.MultiheadAttention`` gets a merged packed input
    projection (new tensors: the original module's are untouched). A weight fold (a linear-slot
    adapter) replaces the ``nn.Linear`` at ``path`` (wrapped or not) by one with its weights.
    """
    owner_path, _, name = path.rpartition('.')
    owner = parent.get_submodule(owner_path) if owner_path else parent
    layer = getattr(owner, name)
    if isinstance(layer, AdaptedModule):  # a linear slot of a model we do not own
        owner, name, layer = layer, 'module', layer.module
    if callable(fold):
        if not isinstance(layer, nn.Linear):
            raise TypeError(f'cannot fold a linear-slot adapter into {path} '
                            f'({type(layer).__name__}): expected nn.Linear')
        setattr(owner, name, apply_weight_fold(layer, fold))
        return
    affine = fold
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

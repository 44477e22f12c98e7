"""The adapter contract.

An adapter is an ``nn.Module`` registered in :data:`mma.registry.ADAPTERS`, built with
``in_features`` (the width of the hidden state it adapts) filled in, and called as
``adapter(x, ctx)`` where ``ctx`` is the routing context of the call (None outside LaVIN; a
non-routed adapter ignores it). It returns a tensor of ``x``'s shape. It may declare, by defining
these methods (:class:`Adapter` gives the defaults):

* ``fold(routing)`` — the affine map ``(M, c)`` with ``adapter(x) == x @ M.T + c`` in eval mode, for
  fixed ``routing`` weights ``(K,)`` (None for a non-routed adapter, or when the routing is not
  constant, e.g. per-token routing in a ViT); None when the adapter cannot be folded. Merging
  (:func:`mma.models.merge_lavin`) folds such an adapter into the layers its slot names.
* ``trainable_names()`` — names (relative to the adapter) of the tensors that train and are
  saved; default: all of its parameters and buffers.

An adapter needs no base class: these functions read the declarations with the defaults.
"""
from typing import List, Optional, Tuple

from torch import Tensor, nn

Affine = Tuple[Tensor, Tensor]


class Adapter(nn.Module):
    """Optional base class of adapters, with the contract's defaults."""

    def fold(self, routing: Optional[Tensor] = None) -> Optional[Affine]:
        return None

    def trainable_names(self) -> List[str]:
        return all_tensor_names(self)


def all_tensor_names(module: nn.Module) -> List[str]:
    return [n for n, _ in module.named_parameters()] + [n for n, _ in module.named_buffers()]


def adapter_fold(adapter: nn.Module, routing: Optional[Tensor] = None) -> Optional[Affine]:
    """The adapter's declared affine form for ``routing`` (None: it cannot be folded)."""
    fold = getattr(adapter, 'fold', None)
    return fold(routing) if callable(fold) else None


def adapter_trainable_names(module: nn.Module) -> List[str]:
    """Names of the tensors of ``module`` that train (its declaration, or all of them)."""
    names = getattr(module, 'trainable_names', None)
    return list(names()) if callable(names) else all_tensor_names(module)

"""The adapter contract.

An adapter is an ``nn.Module`` registered in :data:`mma.registry.ADAPTERS`, built with
``in_features`` (the width of the hidden state it adapts) and the slot's ``sizes`` filled in, and
called as the kind of its slot says (:class:`mma.slots.AdapterSlot`): ``adapter(x, ctx)`` in a
hidden-state slot, returning a tensor of ``x``'s shape; ``adapter(x, layer, ctx)`` in a linear
slot, returning the adapted ``layer(x)``; ``adapter(q, kv, ctx)`` in an attention prefix slot.
``ctx`` is the routing context of the call (None outside LaVIN; a non-routed adapter ignores it).
It may declare, by defining these methods (:class:`Adapter` gives the defaults):

* ``fold(routing)`` — for fixed ``routing`` weights ``(K,)`` (None for a non-routed adapter, or
  when the routing is not constant, e.g. per-token routing in a ViT): in a hidden-state slot the
  affine map ``(M, c)`` with ``adapter(x) == x @ M.T + c`` in eval mode; in a linear slot a
  :data:`WeightFold`, the function ``(weight, bias) -> (weight, bias)`` of the frozen layer
  that reproduces the adapted layer. None when the adapter cannot be folded. Merging
  (:func:`mma.models.merge_lavin`) folds such an adapter into the layers its slot names.
* ``trainable_names()`` — names (relative to the adapter) of the tensors that train and are
  saved; default: all of its parameters and buffers.

An adapter needs no base class: these functions read the declarations with the defaults.
"""
from typing import Callable, List, Optional, Tuple, Union

from torch import Tensor, nn

Affine = Tuple[Tensor, Tensor]
WeightFold = Callable[[Tensor, Optional[Tensor]], Tuple[Tensor, Optional[Tensor]]]


class Adapter(nn.Module):
    """Optional base class of adapters, with the contract's defaults."""

    def fold(self, routing: Optional[Tensor] = None) -> Optional[Union[Affine, WeightFold]]:
        return None

    def trainable_names(self) -> List[str]:
        return all_tensor_names(self)


def require_linear_slot(adapter: str, out_features: Optional[int]) -> int:
    """``out_features`` of a linear-slot adapter, or a clear error when it was built for another
    kind of slot (no layer around it, so no output width was filled in)."""
    if out_features is None:
        raise ValueError(f"{adapter} sits around a frozen linear layer: give it a linear placement "
                         "(e.g. llm_adapter_placement='linear:q,v'), not a hidden-state one "
                         "('attn', 'ffn', 'block')")
    return out_features


def all_tensor_names(module: nn.Module) -> List[str]:
    return [n for n, _ in module.named_parameters()] + [n for n, _ in module.named_buffers()]


def adapter_fold(adapter: nn.Module,
                 routing: Optional[Tensor] = None) -> Optional[Union[Affine, WeightFold]]:
    """The adapter's declared affine form for ``routing`` (None: it cannot be folded)."""
    fold = getattr(adapter, 'fold', None)
    return fold(routing) if callable(fold) else None


def adapter_trainable_names(module: nn.Module) -> List[str]:
    """Names of the tensors of ``module`` that train (its declaration, or all of them)."""
    names = getattr(module, 'trainable_names', None)
    return list(names()) if callable(names) else all_tensor_names(module)

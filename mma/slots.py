"""``AdapterSlot``: the one fact a backbone tells about where an adapter goes.

Backbones (:mod:`mma.llms`, :mod:`mma.encoders`) return slots from ``adapter_slots(placement)``;
models put adapters into them and :mod:`mma.models.merge` folds linear adapters into the layers a
slot names. Kept apart from the packages that use it, so that none of them imports another.
"""
from dataclasses import dataclass
from typing import Tuple

from torch import nn


@dataclass
class AdapterSlot:
    """A place for an adapter: attribute ``name`` of ``parent``.

    Args:
        parent: The module that owns the slot.
        name: The attribute: an empty slot (None) that holds the adapter (the backbone calls it as
            ``adapter(x, ctx)``), or a submodule whose output the adapter maps (it is wrapped in an
            :class:`~mma.adapters.AdaptedModule`).
        folds_into: Dotted paths, relative to ``parent``, of the frozen linear layers that read the
            slot's output and nothing else: an affine adapter in this slot folds into them when
            merged. Empty: nothing can be folded here.
    """
    parent: nn.Module
    name: str
    folds_into: Tuple[str, ...] = ()

    @property
    def occupant(self):
        """What the slot holds now (None, the adapter, or the wrapped submodule)."""
        return getattr(self.parent, self.name)

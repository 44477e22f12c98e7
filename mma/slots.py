"""Adapter slots: where an adapter goes in a backbone, and the wrapper that puts it there.

Backbones (:mod:`mma.llms`, :mod:`mma.encoders`) describe their insertion points as
:class:`AdapterSlot` s from ``adapter_slots(placement)``; a model puts adapters into them
(:meth:`AdapterSlot.insert`), reads them back (:attr:`AdapterSlot.adapter`), and merging folds an
affine adapter into the frozen layers the slot names (:attr:`AdapterSlot.folds_into`) and empties
the slot (:meth:`AdapterSlot.remove`). This module is the only place that knows how an adapter sits
in a slot, so backbones, adapters and models never look for each other by attribute names.
"""
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

from torch import Tensor, nn


class AdaptedModule(nn.Module):
    """Runs ``adapter(module(x), ctx)``; put in place of ``module`` in a model we do not own.

    The wrapped module's state-dict keys are kept: ``ln_1.weight`` stays ``ln_1.weight`` (not
    ``ln_1.module.weight``) in :meth:`state_dict` and loads from there, so original checkpoints
    load unchanged; the adapter's keys are ``ln_1.adapter.*``.
    """

    def __init__(self, module: nn.Module, adapter: nn.Module):
        super().__init__()
        self.module = module
        self.adapter = adapter
        self._register_state_dict_hook(AdaptedModule._flatten_keys)
        self._register_load_state_dict_pre_hook(AdaptedModule._nest_keys)

    def forward(self, x: Tensor, ctx=None) -> Tensor:
        return self.adapter(self.module(x), ctx)

    @staticmethod
    def _flatten_keys(module, state_dict, prefix, local_metadata):
        inner = prefix + 'module.'
        for key in [k for k in state_dict if k.startswith(inner)]:
            state_dict[prefix + key[len(inner):]] = state_dict.pop(key)
        return state_dict

    @staticmethod
    def _nest_keys(state_dict, prefix, *args, **kwargs):
        for key in list(state_dict):
            if key.startswith(prefix) and not key.startswith((prefix + 'adapter.',
                                                               prefix + 'module.')):
                state_dict[prefix + 'module.' + key[len(prefix):]] = state_dict.pop(key)


def unwrap(module: nn.Module) -> nn.Module:
    """The module itself, or the one an :class:`AdaptedModule` wraps (what a backbone put there)."""
    return module.module if isinstance(module, AdaptedModule) else module


@dataclass
class AdapterSlot:
    """A place for an adapter: attribute ``name`` of ``parent``.

    Args:
        parent: The module that owns the slot.
        name: The attribute that holds the adapter.
        folds_into: Dotted paths, relative to ``parent``, of the frozen layers that read the slot's
            output and nothing else (``nn.Linear``, or ``nn.MultiheadAttention`` with a packed input
            projection): an affine adapter in this slot folds into them when merged. Empty:
            nothing can be folded here.
        wraps: False: the attribute is an empty slot (None by default) that holds the adapter
            itself, and the backbone calls it as ``adapter(x, ctx)``. True: the attribute is a
            submodule of a model we do not own, and the adapter maps its output (the submodule is
            wrapped in an :class:`AdaptedModule`, keeping its state-dict keys).
    """
    parent: nn.Module
    name: str
    folds_into: Tuple[str, ...] = ()
    wraps: bool = False

    @property
    def adapter(self) -> Optional[nn.Module]:
        """The adapter in the slot, or None."""
        occ = getattr(self.parent, self.name)
        if self.wraps:
            return occ.adapter if isinstance(occ, AdaptedModule) else None
        return occ

    def insert(self, adapter: nn.Module) -> None:
        """Put ``adapter`` into the slot."""
        if self.adapter is not None:
            raise ValueError(f'adapter slot {self.name!r} of {type(self.parent).__name__} is '
                             'already filled')
        occ = getattr(self.parent, self.name)
        setattr(self.parent, self.name, AdaptedModule(occ, adapter) if self.wraps else adapter)

    def remove(self) -> None:
        """Take the adapter out (a no-op on an empty slot)."""
        if self.adapter is None:
            return
        occ = getattr(self.parent, self.name)
        setattr(self.parent, self.name, occ.module if self.wraps else None)


def slot_prefixes(root: nn.Module, slots: Iterable[AdapterSlot]) -> List[str]:
    """The state-dict prefix, in ``root``, of the adapter each of ``slots`` holds or would hold
    (e.g. ``'layers.0.adapter_attn.'``, ``'transformer.resblocks.0.ln_1.adapter.'``)."""
    names = {id(m): n for n, m in root.named_modules(remove_duplicate=False)}
    # an AdaptedModule keeps the adapter under ``adapter``
    return [f'{names[id(s.parent)]}.{s.name}.' + ('adapter.' if s.wraps else '') for s in slots]


def adapter_prefixes(root: nn.Module, slots: Iterable[AdapterSlot]) -> Dict[str, nn.Module]:
    """``{state-dict prefix: adapter}`` of the filled ``slots`` of ``root``
    (:func:`slot_prefixes`)."""
    slots = list(slots)
    return {prefix: s.adapter for prefix, s in zip(slot_prefixes(root, slots), slots)
            if s.adapter is not None}


def base_state_dict(root: nn.Module, slots: Iterable[AdapterSlot]) -> Dict[str, Tensor]:
    """``root.state_dict()`` without the tensors of the adapters in ``slots``: the backbone's own
    (frozen) weights, as its checkpoint files hold them."""
    prefixes = tuple(adapter_prefixes(root, slots))
    return {k: v for k, v in root.state_dict().items() if not k.startswith(prefixes)}

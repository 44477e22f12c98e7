"""Adapter slots: where an adapter goes in a backbone, and the wrapper that puts it there.

Backbones (:mod:`mma.llms`, :mod:`mma.encoders`) describe their insertion points as
:class:`AdapterSlot` s from ``adapter_slots(placement)``; a model puts adapters into them
(:meth:`AdapterSlot.insert`), reads them back (:attr:`AdapterSlot.adapter`), and merging folds an
affine adapter into the frozen layers the slot names (:attr:`AdapterSlot.folds_into`) and empties
the slot (:meth:`AdapterSlot.remove`). This module is the only place that knows how an adapter sits
in a slot, so backbones, adapters and models never look for each other by attribute names.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

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


class AdaptedLinear(AdaptedModule):
    """Runs ``adapter(x, linear, ctx)``: a linear slot (see :class:`AdapterSlot`) around a frozen
    linear layer of a model we do not own; keys kept as :class:`AdaptedModule` keeps them."""

    def forward(self, x: Tensor, ctx=None) -> Tensor:
        return self.adapter(x, self.module, ctx)


def empty_slots(owner: nn.Module, *names: str) -> None:
    """Register the empty slots ``adapter_<name>`` (None) of ``owner``."""
    for name in names:
        owner.register_module('adapter_' + name, None)


def call_linear(owner: nn.Module, name: str, x: Tensor, ctx=None) -> Tensor:
    """``owner.<name>(x)``, through the adapter of its linear slot ``owner.adapter_<name>`` when
    one is there (called as ``adapter(x, layer, ctx)``; it runs the frozen layer itself)."""
    layer, adapter = getattr(owner, name), getattr(owner, 'adapter_' + name)
    return layer(x) if adapter is None else adapter(x, layer, ctx)


def unwrap(module: nn.Module) -> nn.Module:
    """The module itself, or the one an :class:`AdaptedModule` wraps (what a backbone put there)."""
    return module.module if isinstance(module, AdaptedModule) else module


@dataclass
class AdapterSlot:
    """A place for an adapter: attribute ``name`` of ``parent``.

    Slots come in three kinds (``kind``), each with its own call:

    * ``'hidden'``: the adapter maps a hidden state before frozen layers, ``adapter(x, ctx)``.
    * ``'linear'``: the adapter sits around one frozen linear layer (``folds_into`` names it) and
      is called with the layer's input and the layer, ``adapter(x, layer, ctx)``, returning the
      adapted output (LoRA, DoRA, IA³); its fold maps the layer's weights.
    * ``'prefix'``: in attention, ``adapter(q, kv, ctx)`` gets the rotated queries ``(B, H, T, Dh)``
      and ``kv(tokens)``, the layer's frozen key/value projection of ``(P, D)`` tokens (each
      ``(1, H, P, Dh)``, no rotary), and returns what it adds to the attention output (before the
      output projection): LLaMA-Adapter's gated prefix. It does not fold.

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
            wrapped in an :class:`AdaptedModule`, or an :class:`AdaptedLinear` for a linear
            slot, keeping its state-dict keys).
        kind: ``'hidden'``, ``'linear'`` or ``'prefix'`` (above).
        sizes: Keyword arguments an adapter for this slot is built with (``in_features``,
            ``out_features`` and ``target`` of a linear slot).
    """
    parent: nn.Module
    name: str
    folds_into: Tuple[str, ...] = ()
    wraps: bool = False
    kind: str = 'hidden'
    sizes: Dict[str, Any] = field(default_factory=dict)

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
        wrapper = AdaptedLinear if self.kind == 'linear' else AdaptedModule
        setattr(self.parent, self.name, wrapper(occ, adapter) if self.wraps else adapter)

    def remove(self) -> None:
        """Take the adapter out (a no-op on an empty slot)."""
        if self.adapter is None:
            return
        occ = getattr(self.parent, self.name)
        setattr(self.parent, self.name, occ.module if self.wraps else None)


def linear_slots(blocks: Sequence[nn.Module], placement: str, targets: Dict[str, str],
                 wraps: bool = False) -> List[AdapterSlot]:
    """The linear slots of placement ``'linear:<t>,<t>,...'`` in each of ``blocks``.

    Args:
        blocks: The blocks (e.g. a backbone's layers).
        placement: ``'linear:'`` and comma-separated target names, keys of ``targets``, or
            ``'linear:all'`` for every target.
        targets: Target name -> dotted path of the linear layer in a block (``{'q':
            'attention.wq'}``).
        wraps: False: the layer's owner has an empty slot ``adapter_<name>`` (a backbone we own,
            calling :func:`call_linear`); True: the layer itself is wrapped in an
            :class:`AdaptedLinear`.
    """
    names = [t.strip() for t in placement.partition(':')[2].split(',') if t.strip()]
    names = list(targets) if names == ['all'] else names
    unknown = [t for t in names if t not in targets]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(f'linear adapter placement {placement!r}: expected "linear:" and '
                         f'distinct targets from {", ".join(targets)}'
                         + (f' (unknown: {unknown})' if unknown else ''))
    out = []
    for blk in blocks:
        for target in names:
            owner_path, _, name = targets[target].rpartition('.')
            owner = blk.get_submodule(owner_path) if owner_path else blk
            layer = unwrap(getattr(owner, name))
            sizes = dict(in_features=layer.in_features, out_features=layer.out_features,
                         target=target)
            out.append(AdapterSlot(owner, name if wraps else 'adapter_' + name, (name, ),
                                   wraps=wraps, kind='linear', sizes=sizes))
    return out


def prefix_slots(attentions: Sequence[nn.Module], placement: str) -> List[AdapterSlot]:
    """The attention prefix slots (``adapter_prefix``) of placement ``'prefix'`` (every layer) or
    ``'prefix:N'`` (the top N layers, as LLaMA-Adapter's ``adapter_layer``)."""
    n = len(attentions)
    top = placement.partition(':')[2] or str(n)
    if not top.isdigit() or not 0 < int(top) <= n:
        raise ValueError(f"prefix placement {placement!r}: expected 'prefix' or 'prefix:N' with "
                         f'1 <= N <= {n} layers')
    return [AdapterSlot(a, 'adapter_prefix', kind='prefix') for a in attentions[n - int(top):]]


def layer_slots(blocks: Sequence[nn.Module], placement: str, targets: Dict[str, str],
                attention: str) -> Optional[List[AdapterSlot]]:
    """The slots of a ``'linear:...'`` placement (:func:`linear_slots`, slots owned by the
    backbone) or a ``'prefix[:N]'`` one (:func:`prefix_slots` of each block's submodule at
    ``attention``) in ``blocks``; None for other placements."""
    if placement.startswith('linear:'):
        return linear_slots(blocks, placement, targets)
    if placement.partition(':')[0] == 'prefix':
        return prefix_slots([blk.get_submodule(attention) for blk in blocks], placement)
    return None


def slot_prefixes(root: nn.Module, slots: Iterable[AdapterSlot]) -> List[str]:
    """The state-dict prefix, in ``root``, of the adapter each of ``slots`` holds or would hold
    (e.g. ``'layers.0.adapter_attn.'``, ``'transformer.resblocks.0.ln_1.adapter.'``)."""
    names = {id(m): n for n, m in root.named_modules(remove_duplicate=False)}
    # an AdaptedModule keeps the adapter under ``adapter``
    return ['.'.join(filter(None, (names[id(s.parent)], s.name))) + '.'
            + ('adapter.' if s.wraps else '') for s in slots]


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


def adapters_left(root: nn.Module, slots: Iterable[AdapterSlot]) -> List[Tuple[str, AdapterSlot]]:
    """``(module path in root, slot)`` of each of ``slots`` that holds an adapter."""
    paths = {id(m): n for n, m in root.named_modules()}
    return [(paths[id(s.adapter)], s) for s in slots if s.adapter is not None]

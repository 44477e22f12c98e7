"""Helpers around adapters: insertion into modules we do not own, merging, the trainable set."""
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from mma.routers.routing import RoutingContext

#: Top-level modules of a model that are trained besides the adapters (see :func:`is_trainable`).
TRAINABLE_MODULES = ('projector', 'modality_embedding')


def is_trainable(name: str) -> bool:
    """Whether the parameter or buffer ``name`` belongs to the trainable (saved) set.

    One predicate serves both ``requires_grad`` and what goes into a checkpoint: everything inside
    a module whose attribute name starts with ``adapter`` (adapter slots and inserted adapters,
    routers included), plus the modules in :data:`TRAINABLE_MODULES`.
    """
    parts = name.split('.')
    return parts[0] in TRAINABLE_MODULES or any(p.startswith('adapter') for p in parts[:-1])


def trainable_state_dict(model: nn.Module) -> Dict[str, Tensor]:
    """The model's state dict restricted to :func:`is_trainable` entries."""
    return {k: v for k, v in model.state_dict().items() if is_trainable(k)}


def freeze_all_but_adapters(model: nn.Module) -> None:
    """Set ``requires_grad`` to exactly :func:`is_trainable`."""
    for name, p in model.named_parameters():
        p.requires_grad_(is_trainable(name))


class AdaptedModule(nn.Module):
    """Runs ``adapter(module(x))``; put in place of ``module`` in a model we do not own.

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

    def forward(self, x: Tensor, ctx: Optional[RoutingContext] = None) -> Tensor:
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


def insert_adapter(slot, adapter: nn.Module) -> None:
    """Put ``adapter`` into an :class:`~mma.slots.AdapterSlot`: into the empty slot itself, or
    around the submodule the slot names (an :class:`AdaptedModule` keeping its keys)."""
    occupant = slot.occupant
    setattr(slot.parent, slot.name, adapter if occupant is None else
            AdaptedModule(occupant, adapter))


@torch.no_grad()
def merge_into_linear(linear: nn.Linear, affine: Tuple[Tensor, Tensor]) -> nn.Linear:
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

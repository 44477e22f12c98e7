"""Adapters: small trainable modules put into the slots of frozen backbones."""
from mma.slots import AdaptedModule, AdapterSlot

from .base import Adapter, adapter_fold, adapter_trainable_names
from .rep_adapter import GroupedLinear, RepAdapter, RoutedRepAdapter
from .utils import declared_trainable_names, fold_into, merge_into_linear, set_trainable

__all__ = [
    'Adapter', 'AdaptedModule', 'AdapterSlot', 'GroupedLinear', 'RepAdapter', 'RoutedRepAdapter',
    'adapter_fold', 'adapter_trainable_names', 'declared_trainable_names', 'fold_into',
    'merge_into_linear', 'set_trainable'
]

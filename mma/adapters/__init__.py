"""Adapters: small trainable modules put into explicit slots of frozen backbones."""
from .rep_adapter import GroupedLinear, RepAdapter, RoutedRepAdapter
from .utils import (TRAINABLE_MODULES, AdaptedModule, freeze_all_but_adapters, insert_adapter,
                    is_trainable, merge_into_linear, trainable_state_dict)

__all__ = [
    'GroupedLinear', 'RepAdapter', 'RoutedRepAdapter', 'AdaptedModule', 'TRAINABLE_MODULES',
    'freeze_all_but_adapters', 'insert_adapter', 'is_trainable', 'merge_into_linear',
    'trainable_state_dict'
]

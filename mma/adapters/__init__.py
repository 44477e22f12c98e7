"""Adapters: small trainable modules put into the slots of frozen backbones."""
from mma.slots import AdaptedModule, AdapterSlot

from .base import Adapter, WeightFold, adapter_fold, adapter_trainable_names
from .ia3 import IA3
from .llama_adapter import LLaMAAdapterPrefix
from .lora import DoRA, LoRA
from .rep_adapter import GroupedLinear, RepAdapter, RoutedRepAdapter
from .routed_lora import RoutedLoRA
from .utils import (apply_weight_fold, declared_trainable_names, fold_into, merge_into_linear,
                    set_trainable)

__all__ = [
    'Adapter', 'AdaptedModule', 'AdapterSlot', 'GroupedLinear', 'RepAdapter', 'RoutedRepAdapter',
    'adapter_fold', 'adapter_trainable_names', 'declared_trainable_names', 'fold_into',
    'merge_into_linear', 'set_trainable', 'LoRA', 'DoRA', 'IA3', 'LLaMAAdapterPrefix',
    'RoutedLoRA', 'WeightFold', 'apply_weight_fold'
]

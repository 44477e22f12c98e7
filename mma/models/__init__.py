"""Composite models."""
from .adapter_checkpoint import (check_adapter_keys, convert_reference_state_dict,
                                 load_adapter_checkpoint, read_adapter_state_dict)
from .lavin import IGNORE_INDEX, LaVIN
from .merge import load_merged_state_dict, merge_lavin

__all__ = [
    'IGNORE_INDEX', 'LaVIN', 'check_adapter_keys',
    'convert_reference_state_dict', 'load_adapter_checkpoint',
    'load_merged_state_dict', 'merge_lavin', 'read_adapter_state_dict'
]

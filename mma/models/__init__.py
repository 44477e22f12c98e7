"""Composite models."""
from .adapter_checkpoint import (convert_reference_state_dict, load_adapter_checkpoint,
                                 read_adapter_state_dict)
from .lavin import IGNORE_INDEX, LaVIN, VisualProjector

__all__ = [
    'IGNORE_INDEX', 'LaVIN', 'VisualProjector', 'convert_reference_state_dict',
    'load_adapter_checkpoint', 'read_adapter_state_dict'
]

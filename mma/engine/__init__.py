"""Engine helpers: checkpoints, hooks, distributed setup."""
from .adapter_checkpoint import load_adapter_checkpoint, read_adapter_state

__all__ = ['load_adapter_checkpoint', 'read_adapter_state']

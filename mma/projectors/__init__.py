"""Visual projectors: vision features (``in_features``) to LLM embeddings (``out_features``),
registered in :data:`mma.registry.PROJECTORS`; a model fills both widths in."""
from .lavin_projector import LaVINProjector
from .mlp_projector import MLPProjector

__all__ = ['LaVINProjector', 'MLPProjector']

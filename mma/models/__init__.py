"""Composite models."""
from .lavin import IGNORE_INDEX, LaVIN, VisualProjector

__all__ = ['IGNORE_INDEX', 'LaVIN', 'VisualProjector']

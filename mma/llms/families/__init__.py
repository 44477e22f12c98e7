"""The built-in LLaMA-like families, one file each, registered on import (see
:mod:`mma.llms.family` for the record and the shared machinery)."""
from ..family import FAMILIES, PRESETS, LLMFamily, family_for, register_family
from . import llama, mistral, phi3, qwen2  # noqa: F401  (each registers its family)

__all__ = ['FAMILIES', 'PRESETS', 'LLMFamily', 'family_for', 'register_family']

"""The embedded CPU demo: synthetic ScienceQA-format data and tiny pretrained backbones."""
from .synthetic import CHOICES, write_synthetic_scienceqa

__all__ = ['CHOICES', 'write_synthetic_scienceqa']

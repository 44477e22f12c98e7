"""Vision encoders."""
from .clip_vit import FEATURE_TYPES, CLIPViT
from .open_clip_towers import load_clip_state_dict, preprocess_stats

__all__ = ['CLIPViT', 'FEATURE_TYPES', 'load_clip_state_dict', 'preprocess_stats']

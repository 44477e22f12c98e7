"""Vision encoders."""
from .clip_vit import CLIPViT, load_clip_state_dict

__all__ = ['CLIPViT', 'load_clip_state_dict']

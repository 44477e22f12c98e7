"""Hugging Face CLIP vision weights (``CLIPModel`` / ``CLIPVisionModel``) as open_clip tower keys.

LLaVA-1.5 reads its tower from the HF folder ``openai/clip-vit-large-patch14-336``; the same
weights in open_clip are ``ViT-L-14-336-quickgelu``. The mapping is one-to-one except that HF keeps
q/k/v apart (open_clip packs them into ``in_proj``) and stores the projection transposed.
"""
import re
from typing import Dict, Iterable, Optional, Tuple

import torch
from torch import Tensor

HF_PREFIX = 'vision_model.'

_RENAMES = (  # HF name (after vision_model.) -> open_clip name
    (r'^embeddings\.class_embedding$', 'class_embedding'),
    (r'^embeddings\.patch_embedding\.weight$', 'conv1.weight'),
    (r'^embeddings\.position_embedding\.weight$', 'positional_embedding'),
    (r'^pre_layrnorm\.', 'ln_pre.'),
    (r'^post_layernorm\.', 'ln_post.'),
    (r'^encoder\.layers\.(\d+)\.layer_norm1\.', r'transformer.resblocks.\1.ln_1.'),
    (r'^encoder\.layers\.(\d+)\.layer_norm2\.', r'transformer.resblocks.\1.ln_2.'),
    (r'^encoder\.layers\.(\d+)\.mlp\.fc1\.', r'transformer.resblocks.\1.mlp.c_fc.'),
    (r'^encoder\.layers\.(\d+)\.mlp\.fc2\.', r'transformer.resblocks.\1.mlp.c_proj.'),
    (r'^encoder\.layers\.(\d+)\.self_attn\.out_proj\.', r'transformer.resblocks.\1.attn.out_proj.'),
)
_QKV = re.compile(r'^encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$')


#: Where other layouts keep ``CLIPVisionModel``'s ``vision_model.*``: llava-hf saved by
#: transformers 4 / 5, transformers 5's in-memory LLaVA, and a bare ``CLIPVisionModel`` saved by
#: transformers 5 (no ``vision_model.`` level).
_TOWER_PREFIXES = ('vision_tower.vision_model.', 'model.vision_tower.vision_model.',
                   'vision_tower.', 'model.vision_tower.', '')
_BARE = ('embeddings.', 'encoder.layers.', 'pre_layrnorm.', 'post_layernorm.')


def is_hf_clip(state_dict: Dict[str, Tensor]) -> bool:
    return any(k.startswith(HF_PREFIX) for k in state_dict)


def hf_tower_prefix(keys: Iterable[str]) -> Optional[str]:
    """What comes before ``CLIPVisionModel``'s ``embeddings.*`` / ``encoder.layers.*`` names in
    ``keys`` (``'vision_model.'``, a LLaVA layout's prefix, ``''``); None: no HF CLIP tower."""
    keys = list(keys)
    for prefix in (HF_PREFIX, ) + _TOWER_PREFIXES:
        if any(k.startswith(prefix) and k[len(prefix):].startswith(_BARE) for k in keys):
            return prefix
    return None


def hf_vision_keys(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """The HF CLIP vision tensors of a llava-hf or transformers 5 ``CLIPVisionModel`` state dict
    under ``vision_model.*`` (a LLaVA folder's language model and projector dropped); any other
    state dict is returned as it is."""
    prefix = hf_tower_prefix(state_dict)
    if prefix is None or prefix == HF_PREFIX:
        return state_dict
    return {HF_PREFIX + k[len(prefix):]: v for k, v in state_dict.items()
            if k.startswith(prefix) and k[len(prefix):].startswith(_BARE)}


def hf_clip_to_open_clip(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """The vision tower of an HF CLIP state dict under open_clip's ``VisionTransformer`` keys.

    ``visual_projection.weight`` becomes ``proj`` (transposed) when present; the text tower and
    HF's ``position_ids`` buffer are dropped. Unknown vision keys are kept under their HF names,
    so that strict loading names them.
    """
    out, qkv = {}, {}
    for key, value in state_dict.items():
        if key == 'visual_projection.weight':
            out['proj'] = value.t().contiguous()
        if not key.startswith(HF_PREFIX) or key.endswith('position_ids'):
            continue
        name = key[len(HF_PREFIX):]
        m = _QKV.match(name)
        if m:
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = value
            continue
        for pattern, repl in _RENAMES:
            if re.search(pattern, name):
                name = re.sub(pattern, repl, name)
                break
        out[name] = value
    for (layer, kind), parts in qkv.items():
        if set(parts) != set('qkv'):
            raise KeyError(f'HF CLIP layer {layer}: {kind} of q/k/v incomplete ({sorted(parts)})')
        out[f'transformer.resblocks.{layer}.attn.in_proj_{kind}'] = torch.cat(
            [parts['q'], parts['k'], parts['v']], dim=0)
    return out


#: transformers' ``CLIPVisionConfig`` defaults (llava-hf's transformers 4 ``vision_config`` states
#: only the fields that differ from them).
_CLIP_VISION_DEFAULTS = dict(hidden_size=768, intermediate_size=3072, projection_dim=512,
                             num_hidden_layers=12, num_attention_heads=12, image_size=224,
                             patch_size=32, hidden_act='quick_gelu')


def folder_vision_cfg(folder: str) -> Optional[Tuple[dict, bool]]:
    """``(open_clip vision_cfg with embed_dim, quick_gelu)`` of an HF CLIP or llava-hf folder's
    ``config.json`` (its ``vision_config``, or a ``CLIPVisionModel``'s own fields); None when the
    folder has no such config (the tower is then named by ``model_name``)."""
    import json
    import os
    file = os.path.join(folder, 'config.json')
    if not os.path.isfile(file):
        return None
    with open(file, encoding='utf-8') as f:
        cfg = json.load(f)
    if cfg.get('model_type') != 'clip_vision_model':
        cfg = cfg.get('vision_config')
    if not cfg:
        return None
    c = {**_CLIP_VISION_DEFAULTS, **cfg}
    if c['hidden_act'] not in ('quick_gelu', 'gelu'):
        raise ValueError(f"{file}: vision hidden_act={c['hidden_act']!r} has no open_clip tower")
    width = c['hidden_size']
    return (dict(image_size=c['image_size'], patch_size=c['patch_size'], width=width,
                 layers=c['num_hidden_layers'], head_width=width // c['num_attention_heads'],
                 mlp_ratio=c['intermediate_size'] / width, embed_dim=c['projection_dim']),
            c['hidden_act'] == 'quick_gelu')

"""open_clip vision towers: building one by name or ``vision_cfg``, its preprocessing statistics,
and strict loading of its weights from a local file.

Two kinds of tower come out of open_clip: its own ``VisionTransformer`` (OpenAI CLIP, LAION ViT-H,
...) and a ``TimmModel`` wrapping a timm trunk (SigLIP, EVA02); :mod:`.native_tower` and
:mod:`.timm_tower` know how to run each.
"""
import os
import warnings
import zipfile
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from mma.errors import CorruptFileError

from .hf_clip import HF_PREFIX, hf_clip_to_open_clip, hf_tower_prefix, hf_vision_keys, is_hf_clip

# open_clip's defaults (``open_clip.constants.OPENAI_DATASET_MEAN/STD``), used when a tower's
# config and pretrained tags say nothing.
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def model_config(model_name: str) -> dict:
    """open_clip's config of ``model_name``, or a KeyError listing the vision towers it knows."""
    import open_clip
    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        known = [m for m in open_clip.list_models() if 'ViT' in m or 'EVA' in m]
        raise KeyError(f'open_clip has no model config named {model_name!r}; known vision '
                       f'towers: {", ".join(known)}')
    return cfg


def build_tower(model_name: Optional[str], vision_cfg: Optional[dict],
                quick_gelu: Optional[bool]) -> nn.Module:
    """The vision tower of open_clip model ``model_name``, or of an explicit ``vision_cfg``.

    ``vision_cfg`` is open_clip's ``CLIPVisionCfg`` as a dict plus ``embed_dim`` (the output width
    of the pooled head); ``timm_model_name`` in it builds a timm-based tower as open_clip does.
    """
    from open_clip.model import _build_vision_tower
    if vision_cfg is None:
        if model_name is None:
            raise ValueError('CLIPViT needs model_name (e.g. "ViT-L-14-quickgelu") or vision_cfg')
        model_cfg = model_config(model_name)
        vision_cfg = model_cfg['vision_cfg']
        embed_dim = model_cfg['embed_dim']
        if quick_gelu is None:
            quick_gelu = model_cfg.get('quick_gelu', False)
    else:
        vision_cfg = dict(vision_cfg)
        embed_dim = vision_cfg.pop('embed_dim', vision_cfg.get('width', 64))
    return _build_vision_tower(embed_dim, vision_cfg, quick_gelu=bool(quick_gelu))


def preprocess_stats(model_name: Optional[str]) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """``(mean, std)`` the tower's weights were trained with, as open_clip would preprocess.

    From the model config's ``preprocess_cfg`` if it has one, else from its pretrained tags
    (SigLIP's are 0.5, OpenAI/LAION/EVA's are OpenAI's); the tags must agree. A tower built
    from a bare ``vision_cfg`` gets open_clip's default (OpenAI's).
    """
    if model_name is None:
        return OPENAI_MEAN, OPENAI_STD
    import open_clip
    pp = model_config(model_name).get('preprocess_cfg', {})
    if 'mean' in pp and 'std' in pp:
        return tuple(pp['mean']), tuple(pp['std'])
    stats = set()
    for tag in open_clip.list_pretrained_tags_by_model(model_name):
        cfg = open_clip.get_pretrained_cfg(model_name, tag)
        stats.add((tuple(cfg.get('mean', OPENAI_MEAN)), tuple(cfg.get('std', OPENAI_STD))))
    if len(stats) > 1:
        raise ValueError(f'the pretrained weights of {model_name} use different normalisations '
                         f'{sorted(stats)}: set image_mean and image_std in the encoder config')
    return stats.pop() if stats else (OPENAI_MEAN, OPENAI_STD)


# The weights file of a downloaded folder: HF (LLaVA's CLIP) or open_clip's hub layout.
FOLDER_FILES = ('model.safetensors', 'pytorch_model.bin', 'open_clip_model.safetensors',
                'open_clip_pytorch_model.bin')


def load_clip_state_dict(path: str) -> Dict[str, Tensor]:
    """Read a CLIP checkpoint: open_clip/OpenAI state dict (``.pt``/``.bin``/``.pth``, optionally
    under ``state_dict``), a ``.safetensors`` file, OpenAI's TorchScript archive, or a folder
    holding one of :data:`FOLDER_FILES` (an HF or open_clip hub download)."""
    if os.path.isdir(path):
        refuse_towerless_llava(path)
        index = os.path.join(path, 'model.safetensors.index.json')
        if os.path.isfile(index):  # a sharded folder (llava-hf): the tower's tensors only
            return _tower_tensors_of_shards(path, index)
        found = [f for f in FOLDER_FILES if os.path.isfile(os.path.join(path, f))]
        if not found:
            raise FileNotFoundError(f'CLIP weights folder {path} holds none of '
                                    f'{", ".join(FOLDER_FILES)}')
        path = os.path.join(path, found[0])
    if not os.path.isfile(path):
        raise FileNotFoundError(f'CLIP weights file not found: {path}')
    try:
        if path.endswith('.safetensors'):
            from safetensors.torch import load_file
            sd = load_file(path)
        elif _is_torchscript(path):  # OpenAI's ViT-L-14.pt: TorchScript is the only way in
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', FutureWarning)
                sd = torch.jit.load(path, map_location='cpu').state_dict()
        else:
            sd = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except Exception as err:
        raise CorruptFileError(f'could not read CLIP weights {path} (expected an open_clip/OpenAI '
                               f'state dict, .safetensors or OpenAI TorchScript .pt): {err}') from err
    if isinstance(sd, dict) and isinstance(sd.get('state_dict'), dict):
        sd = sd['state_dict']
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise ValueError(f'CLIP weights {path} are not a state dict of tensors')
    return dict(sd)


def refuse_towerless_llava(folder: str) -> None:
    """LLaVA's own release folders (``model_type: llava_llama``) hold no tower: say where it is."""
    import json
    file = os.path.join(folder, 'config.json')
    if not os.path.isfile(file):
        return
    with open(file, encoding='utf-8') as f:
        cfg = json.load(f)
    if cfg.get('model_type') == 'llava_llama':
        raise ValueError(f'{folder} is a LLaVA release folder, which holds no vision tower: its '
                         f"config names mm_vision_tower={cfg.get('mm_vision_tower')!r}; set the "
                         'encoder\'s pretrained to that CLIP folder (docs/weights.md, "Starting '
                         'from LLaVA-1.5")')


def _tower_tensors_of_shards(folder: str, index: str) -> Dict[str, Tensor]:
    """The vision tower tensors of a sharded safetensors folder (other tensors are not read)."""
    import json
    from safetensors import safe_open
    with open(index, encoding='utf-8') as f:
        weight_map = json.load(f)['weight_map']
    prefix = hf_tower_prefix(weight_map)
    files: Dict[str, list] = {}
    for key, file in weight_map.items():
        if prefix in (None, HF_PREFIX) or key.startswith(prefix):
            files.setdefault(file, []).append(key)
    sd = {}
    for file, names in files.items():
        with safe_open(os.path.join(folder, file), framework='pt') as f:
            sd.update({k: f.get_tensor(k) for k in names})
    return hf_vision_keys(sd)


def _is_torchscript(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith('/constants.pkl') or n == 'constants.pkl' for n in z.namelist())


def load_tower_weights(tower: nn.Module, path: str, what: str,
                       own: Optional[Dict[str, Tensor]] = None) -> None:
    """Load ``tower``'s weights from the local file ``path`` (``visual.*`` keys, bare keys or HF
    CLIP's ``vision_model.*`` keys, see :mod:`.hf_clip`).

    Strict: every tower weight must be in the file with its shape, and the file may hold no other
    ``visual.*`` weights; tensors are cast to the tower's dtype. ``own``: the tower's own weights
    (default: its whole state dict; the encoder passes it without the adapters in its slots, which
    are left as they are). ``what`` names the tower in errors.
    """
    sd = hf_vision_keys(load_clip_state_dict(path))
    hf = is_hf_clip(sd)
    if hf:
        sd = hf_clip_to_open_clip(sd)
    if any(k.startswith('visual.') for k in sd):
        sd = {k[len('visual.'):]: v for k, v in sd.items() if k.startswith('visual.')}
    own = tower.state_dict() if own is None else own
    if not set(own) & set(sd):
        hint = next((k for k in own if k.endswith('conv1.weight') or 'patch_embed.' in k),
                    next(iter(own)))  # the patch embedding: a key every reader recognises
        raise ValueError(f'{path} does not look like CLIP vision weights: expected keys like '
                         f'visual.{hint} ({what}), found e.g. {sorted(sd)[:5]}')
    if hf and 'proj' in own and 'proj' not in sd and getattr(tower, 'proj', None) is not None:
        # a CLIPVisionModel (LLaVA's tower) has no projection to the joint space: nor has this
        tower.proj = None
        own = {k: v for k, v in own.items() if k != 'proj'}
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise KeyError(f'CLIP weights {path} do not match {what}: missing {len(missing)} keys '
                       f'{missing[:5]}, unexpected {len(unexpected)} keys {unexpected[:5]} '
                       '(a different tower, size or depth?)')
    bad = [f'{k}: file {tuple(sd[k].shape)} vs model {tuple(v.shape)}'
           for k, v in own.items() if tuple(sd[k].shape) != tuple(v.shape)]
    if bad:
        raise ValueError(f'CLIP weights {path} do not match {what}: shape mismatch for '
                         f'{"; ".join(bad[:5])}')
    on_meta = any(p.is_meta for p in tower.parameters())
    device = torch.device('cpu') if on_meta else next(tower.parameters()).device
    sd = {k: sd[k].to(device=device, dtype=v.dtype) for k, v in own.items()}
    tower.load_state_dict(sd, strict=False, assign=on_meta)
    if on_meta:
        _compute_buffers(tower, device, what)


def _compute_buffers(tower: nn.Module, device: torch.device, what: str) -> None:
    """Fill the non-persistent buffers of a tower built on the meta device: they are computed at
    construction (EVA's rotary tables), not stored, so no file holds them. timm modules that own
    such buffers recompute them with ``init_non_persistent_buffers``."""
    for module in tower.modules():
        names = [n for n in module._non_persistent_buffers_set
                 if module._buffers.get(n) is not None and module._buffers[n].is_meta]
        if not names:
            continue
        if not hasattr(module, 'init_non_persistent_buffers'):
            raise ValueError(f'{what}: {type(module).__name__} computes buffers {names} at '
                             'construction, which a meta-device build lacks; build the tower on '
                             'a real device')
        for n in names:
            module._buffers[n] = torch.empty_like(module._buffers[n], device=device)
        module.init_non_persistent_buffers()

"""Adapter checkpoints: mma's own, mmengine's, and the original LaVIN code's.

An mma adapter checkpoint is a flat ``{name: tensor}`` dict of the model's trainable tensors
(``model.trainable_state_dict()``) saved with ``torch.save`` or as ``.safetensors``.
:func:`read_adapter_state_dict` also accepts an mmengine checkpoint (its ``state_dict``) and a
reference LaVIN training checkpoint ``checkpoint-N.pth`` (``{'model', 'optimizer', 'epoch',
'scaler', 'args'}``, reference names, Conv1d shapes, maybe ``module.`` prefixes), which it converts
(reference doc §7):

=====================================================  ============================================
reference                                              mma
=====================================================  ============================================
``layers.{i}.adapter_attn.conv_A.weight [8, d, 1]``    ``llm.layers.{i}.adapter_attn.down.weight``
``layers.{i}.adapter_attn.conv_B.weight [d, 4, 1]``    ``....experts.0.weight`` (``up`` if not routed)
``layers.{i}.adapter_attn.conv_D.*``                   ``....experts.1.*``
``layers.{i}.adapter_attn.expert_weights.*``           ``....router.linear.*``
``layers.{i}.adapter_mlp.*``                           ``llm.layers.{i}.adapter_ffn.*``
``backbone.visual.transformer.resblocks.{j}.``         ``vision.tower.transformer.resblocks.{j}.``
``adapter_attn.*`` / ``adapter_mlp.*``                 ``ln_1.adapter.*`` / ``ln_2.adapter.*``
``adapter_proj.conv_A.*`` / ``conv_B.*``               ``projector.fc1.*`` / ``projector.fc2.*``
``adapter_modality_embedding.weight``                  ``modality_embedding.weight``
=====================================================  ============================================
"""
import os
import re
from typing import Dict, Iterable, Optional, Set, Union

import torch
from torch import Tensor, nn

from mma.fileio import load_safetensors

_SLOT = {'attn': ('adapter_attn', 'ln_1'), 'mlp': ('adapter_ffn', 'ln_2')}
_PART = {'conv_A': 'down', 'conv_B': 'experts.0', 'conv_D': 'experts.1',
         'expert_weights': 'router.linear'}
_LLM_RE = re.compile(r'layers\.(\d+)\.adapter_(attn|mlp)\.(conv_A|conv_B|conv_D|expert_weights)'
                     r'\.(weight|bias)')
_VIT_RE = re.compile(r'backbone\.visual\.transformer\.resblocks\.(\d+)\.adapter_(attn|mlp)\.'
                     r'(conv_A|conv_B|conv_D|expert_weights)\.(weight|bias)')
_TOP = {'adapter_proj.conv_A.weight': 'projector.fc1.weight',
        'adapter_proj.conv_A.bias': 'projector.fc1.bias',
        'adapter_proj.conv_B.weight': 'projector.fc2.weight',
        'adapter_proj.conv_B.bias': 'projector.fc2.bias',
        'adapter_modality_embedding.weight': 'modality_embedding.weight'}


def is_reference_state_dict(sd: Dict[str, Tensor]) -> bool:
    """Whether the keys follow the original LaVIN code's names."""
    return any(_LLM_RE.fullmatch(k) or _VIT_RE.fullmatch(k) or k in _TOP for k in sd)


def convert_reference_state_dict(sd: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Reference LaVIN names and Conv1d shapes -> mma names and Linear shapes.

    Raises:
        KeyError: listing every key that is not part of the documented reference layout.
    """
    sd = {_strip_module(k): v for k, v in sd.items()}
    routed = {k.rsplit('.', 2)[0] for k in sd if '.conv_D.' in k or '.expert_weights.' in k}
    out, unknown = {}, []
    for key, t in sd.items():
        m_llm, m_vit = _LLM_RE.fullmatch(key), _VIT_RE.fullmatch(key)
        if key in _TOP:
            out[_TOP[key]] = t
            continue
        if not (m_llm or m_vit):
            unknown.append(key)
            continue
        idx, slot, part, kind = (m_llm or m_vit).groups()
        if part == 'conv_B' and key.rsplit('.', 2)[0] not in routed:
            new_part = 'up'  # a plain (non-routed) RepAdapter
        else:
            new_part = _PART[part]
        if m_llm:
            name = f'llm.layers.{idx}.{_SLOT[slot][0]}.{new_part}.{kind}'
        else:
            name = f'vision.tower.transformer.resblocks.{idx}.{_SLOT[slot][1]}.adapter.' \
                   f'{new_part}.{kind}'
        if part.startswith('conv_') and kind == 'weight':
            if t.dim() != 3 or t.shape[-1] != 1:
                raise ValueError(f'reference key {key}: expected a Conv1d weight [out, in, 1], '
                                 f'got {tuple(t.shape)}')
            t = t[..., 0]
        out[name] = t
    if unknown:
        raise KeyError(f'{len(unknown)} keys are not part of the reference LaVIN checkpoint '
                       f'layout: {unknown[:10]}')
    return out


def _strip_module(key: str) -> str:
    return key[len('module.'):] if key.startswith('module.') else key


def read_adapter_state_dict(path: str) -> Dict[str, Tensor]:
    """Adapter tensors in mma names from an mma, mmengine or reference LaVIN checkpoint file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'adapter checkpoint not found: {path}')
    if path.endswith('.safetensors'):
        obj = load_safetensors(path, 'an adapter checkpoint (mma, mmengine or LaVIN)')
    else:
        from mma.engine.compat import load_checkpoint_file  # mma.engine imports this module
        obj = load_checkpoint_file(path, map_location='cpu',
                                   what='an adapter checkpoint (mma, mmengine or LaVIN)')
    if isinstance(obj, dict):
        for field in ('state_dict', 'model'):
            if isinstance(obj.get(field), dict):
                obj = obj[field]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f'{path} is not an adapter checkpoint: expected a dict of tensors, '
                         "possibly under 'state_dict' (mmengine) or 'model' (LaVIN)")
    sd = {_strip_module(k): v for k, v in obj.items()}
    if is_reference_state_dict(sd):
        try:
            return convert_reference_state_dict(sd)
        except (KeyError, ValueError) as err:
            raise type(err)(f'{path}: {err.args[0]}') from None
    return sd


def check_adapter_keys(keys: Iterable[str], trainable: Set[str], where: str = 'checkpoint',
                       frozen: Optional[Set[str]] = None) -> None:
    """Raise a ``KeyError`` unless ``keys`` hold every trainable tensor of a model and nothing
    the model lacks; the message lists the offending keys (a checkpoint of another config:
    different adapter placement, ViT adapters or sizes).

    Args:
        keys: Tensor names of the checkpoint.
        trainable: The model's trainable tensor names (what mma checkpoints hold).
        where: Names the checkpoint in the message.
        frozen: The model's frozen tensor names, which the file may also hold (a full state
            dict; they are ignored). None: any key outside ``trainable`` is an error.
    """
    keys = set(keys)
    unexpected = sorted(keys - trainable - (frozen or set()))
    missing = sorted(trainable - keys)
    if not (unexpected or missing):
        return
    parts = []
    if unexpected:
        parts.append(f'{len(unexpected)} unexpected keys that are no trainable tensor of the '
                     'model (frozen or base weights, or tensors of another config: mma checkpoints '
                     'hold trainable tensors only, base weights come from the model\'s own files): '
                     f'{unexpected[:10]}')
    if missing:
        parts.append(f'{len(missing)} missing adapter tensors of the model: {missing[:10]}')
    raise KeyError(f'{where} does not match the model: ' + '; '.join(parts))


@torch.no_grad()
def load_adapter_checkpoint(model: nn.Module, checkpoint: Union[str, Dict[str, Tensor]]) -> None:
    """Load adapter tensors into ``model`` strictly (:func:`check_adapter_keys`).

    Every trainable tensor of the model must be present with its shape; keys the model does not
    have are an error (listed); frozen base weights in the file (a full mmengine state dict) are
    ignored, as base weights come from the base checkpoints.
    """
    where = checkpoint if isinstance(checkpoint, str) else 'adapter state dict'
    sd = read_adapter_state_dict(checkpoint) if isinstance(checkpoint, str) else dict(checkpoint)
    own = model.state_dict()
    wanted = model.trainable_names()
    check_adapter_keys(sd, wanted, where, frozen=set(own) - wanted)
    bad = [f'{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}'
           for k in sorted(wanted) if tuple(sd[k].shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(f'{where}: shape mismatch for {"; ".join(bad[:5])}')
    to_assign = {}
    for k in sorted(wanted):
        p = own[k]
        t = sd[k].to(dtype=p.dtype, device='cpu' if p.is_meta else p.device)
        if p.is_meta:
            to_assign[k] = t
        else:
            p.copy_(t)
    if to_assign:
        model.load_state_dict(to_assign, strict=False, assign=True)

"""Adapter checkpoints: mma's own, mmengine's, and the original LaVIN code's.

An mma adapter checkpoint is a flat ``{name: tensor}`` dict of the model's trainable tensors
(``model.trainable_state_dict()``) saved with ``torch.save`` or as ``.safetensors``.
:func:`read_adapter_state_dict` also accepts an mmengine checkpoint (its ``state_dict``) and a
training checkpoint of the original LaVIN code, ``checkpoint-N.pth`` (``{'model', 'optimizer',
'epoch', 'scaler', 'args'}``, its own names, Conv1d shapes, maybe ``module.`` prefixes), which it
converts for a given model (the layout of ``LaVIN/lavin/model.py`` and
``LaVIN/lavin/mm_adapter.py`` of the original code; docs/weights.md):

=====================================================  ============================================
original LaVIN                                         mma
=====================================================  ============================================
``layers.{i}.adapter_attn.*``                          adapter of the LLM's ``attn`` slot ``i``
``layers.{i}.adapter_mlp.*``                           adapter of the LLM's ``ffn`` slot ``i``
``backbone.visual.transformer.resblocks.{j}.``         adapter of the vision encoder's ``attn`` /
``adapter_attn.*`` / ``adapter_mlp.*``                 ``ffn`` slot ``j``
``....conv_A.weight [8, d, 1]``                        ``....down.weight``
``....conv_B.weight [d, 4, 1]``                        ``....experts.0.weight`` (``up`` if not routed)
``....conv_D.*``                                       ``....experts.1.*``
``....expert_weights.*``                               ``....router.linear.*``
``adapter_proj.conv_A.*`` / ``conv_B.*``               ``projector.fc1.*`` / ``projector.fc2.*``
``adapter_modality_embedding.weight``                  ``modality_embedding.weight``
=====================================================  ============================================

The model's adapter slots (:mod:`mma.slots`) name where each adapter sits, so the conversion
holds for any backbone that declares ``attn`` and ``ffn`` slots, one per block in block order.
"""
import os
import re
from typing import Dict, Iterable, List, Optional, Set, Tuple, Union

import torch
from torch import Tensor, nn

from mma.checkpoint_file import AllowUnsafe, load_checkpoint_file
from mma.fileio import load_safetensors
from mma.slots import AdapterSlot, slot_prefixes

_KIND = {'attn': 'attn', 'mlp': 'ffn'}  # reference adapter name -> slot placement
_PART = {'conv_A': 'down', 'conv_B': 'experts.0', 'conv_D': 'experts.1',
         'expert_weights': 'router.linear'}
_ADAPTER = r'adapter_(attn|mlp)\.(conv_A|conv_B|conv_D|expert_weights)\.(weight|bias)'
_LLM_RE = re.compile(r'layers\.(\d+)\.' + _ADAPTER)
_VIT_RE = re.compile(r'backbone\.visual\.transformer\.resblocks\.(\d+)\.' + _ADAPTER)
_TOP = {'adapter_proj.conv_A.weight': 'projector.fc1.weight',
        'adapter_proj.conv_A.bias': 'projector.fc1.bias',
        'adapter_proj.conv_B.weight': 'projector.fc2.weight',
        'adapter_proj.conv_B.bias': 'projector.fc2.bias',
        'adapter_modality_embedding.weight': 'modality_embedding.weight'}
_WHAT = 'an adapter checkpoint (mma, mmengine or LaVIN)'


def is_reference_state_dict(sd: Dict[str, Tensor]) -> bool:
    """Whether the keys follow the original LaVIN code's names."""
    return any(_LLM_RE.fullmatch(k) or _VIT_RE.fullmatch(k) or k in _TOP for k in sd)


def _slot_prefixes(model: nn.Module) -> Dict[Tuple[str, str], List[str]]:
    """``{(backbone, placement): state-dict prefix of each block's slot}`` of ``model``'s LLM
    (``'llm'``) and vision encoder (``'vit'``), for placements ``'attn'`` and ``'ffn'``."""
    out = {}
    for part, backbone in (('llm', getattr(model, 'llm', None)),
                           ('vit', getattr(model, 'vision', None))):
        for kind in ('attn', 'ffn'):
            try:
                slots: List[AdapterSlot] = backbone.adapter_slots(kind) if backbone else []
            except ValueError:  # a backbone may offer one placement only
                slots = []
            out[part, kind] = slot_prefixes(model, slots)
    return out


def convert_reference_state_dict(sd: Dict[str, Tensor], model: nn.Module) -> Dict[str, Tensor]:
    """The original LaVIN code's names and Conv1d shapes -> ``model``'s names and Linear shapes.

    Args:
        sd: The reference state dict (``module.`` prefixes allowed).
        model: The model the adapters are for (may be on the meta device): its adapter slots name
            the adapters, filled or not (a tensor for an empty slot is then an unexpected key).

    Raises:
        KeyError: listing every key that is not part of the reference layout, or whose block the
            model has no adapter slot for.
    """
    sd = {_strip_module(k): v for k, v in sd.items()}
    prefixes = _slot_prefixes(model)
    routed = {k.rsplit('.', 2)[0] for k in sd if '.conv_D.' in k or '.expert_weights.' in k}
    out, unknown, no_slot = {}, [], []
    for key, t in sd.items():
        m_llm, m_vit = _LLM_RE.fullmatch(key), _VIT_RE.fullmatch(key)
        if key in _TOP:
            out[_TOP[key]] = t
            continue
        if not (m_llm or m_vit):
            unknown.append(key)
            continue
        idx, ref_kind, part, kind = (m_llm or m_vit).groups()
        blocks = prefixes['llm' if m_llm else 'vit', _KIND[ref_kind]]
        if int(idx) >= len(blocks):
            no_slot.append(key)
            continue
        if part == 'conv_B' and key.rsplit('.', 2)[0] not in routed:
            new_part = 'up'  # a plain (non-routed) RepAdapter
        else:
            new_part = _PART[part]
        if part.startswith('conv_') and kind == 'weight':
            if t.dim() != 3 or t.shape[-1] != 1:
                raise ValueError(f'reference key {key}: expected a Conv1d weight [out, in, 1], '
                                 f'got {tuple(t.shape)}')
            t = t[..., 0]
        out[f'{blocks[int(idx)]}{new_part}.{kind}'] = t
    if unknown:
        raise KeyError(f'{len(unknown)} keys are not part of the reference LaVIN checkpoint '
                       f'layout: {unknown[:10]}')
    if no_slot:
        raise KeyError(f'{len(no_slot)} keys of the reference LaVIN checkpoint are for blocks '
                       f'the model has no adapter slot in (another model size?): {no_slot[:10]}')
    return out


def _strip_module(key: str) -> str:
    return key[len('module.'):] if key.startswith('module.') else key


def read_adapter_state_dict(path: str, model: Optional[nn.Module] = None,
                            allow_unsafe: AllowUnsafe = False) -> Dict[str, Tensor]:
    """Adapter tensors in mma names from an mma, mmengine or reference LaVIN checkpoint file.

    Args:
        path: The file (``.safetensors`` or a ``torch.save`` file).
        model: The model the adapters are for; needed for a reference LaVIN checkpoint, whose
            tensors the model's adapter slots name (:func:`convert_reference_state_dict`).
        allow_unsafe: Permission to unpickle the file fully if it holds more than tensors and
            plain data (True, or trusted paths; :mod:`mma.checkpoint_file`).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'adapter checkpoint not found: {path}')
    if path.endswith('.safetensors'):
        obj = load_safetensors(path, _WHAT)
    else:
        obj = load_checkpoint_file(path, map_location='cpu', what=_WHAT,
                                   allow_unsafe=allow_unsafe)
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
        if model is None:
            raise ValueError(f'{path} is a checkpoint of the original LaVIN code: its tensors are '
                             'named by the adapter slots of the model they are for; pass the '
                             'model (tools/convert_lavin_checkpoint.py: --config)')
        try:
            return convert_reference_state_dict(sd, model)
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
def load_adapter_checkpoint(model: nn.Module, checkpoint: Union[str, Dict[str, Tensor]],
                            allow_unsafe: AllowUnsafe = False) -> None:
    """Load adapter tensors into ``model`` strictly (:func:`check_adapter_keys`).

    Every trainable tensor of the model must be present with its shape; keys the model does not
    have are an error (listed); frozen base weights in the file (a full mmengine state dict) are
    ignored, as base weights come from the base checkpoints. ``allow_unsafe``: as for
    :func:`read_adapter_state_dict`.
    """
    where = checkpoint if isinstance(checkpoint, str) else 'adapter state dict'
    sd = (read_adapter_state_dict(checkpoint, model, allow_unsafe) if isinstance(checkpoint, str)
          else dict(checkpoint))
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

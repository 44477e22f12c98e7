"""PEFT's adapter tensors and folders for mma's LLaMA slots: bring PEFT LoRAs in, take mma's out.

A PEFT adapter folder holds ``adapter_config.json`` and ``adapter_model.safetensors`` whose keys
name transformers' modules: ``base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight``.
mma's LLaMA keeps Meta's names and rotary layout, so the keys map onto the linear slots
(``layers.{i}.attention.adapter_wq.lora_A.weight``) and the tensors indexed by the output rows of
``q``/``k`` (``lora_B``, DoRA's magnitude, IA³'s output scaling) are re-ordered as the frozen
weights are (:func:`mma.llms.hf_format.hf_unpermute`). LoRA and DoRA folders load and save;
IA³ and AdaptionPrompt (LLaMA-Adapter) tensors load.
"""
import json
import os
import re
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from mma.fileio import open_safetensors
from mma.llms.hf_format import hf_permute, hf_unpermute
from mma.registry import ADAPTERS

PEFT_LAYERS = 'base_model.model.model.layers.'
# HF projection (PEFT's target_modules) -> (mma target, mma owner, mma layer)
HF_PROJECTIONS = {
    'q_proj': ('q', 'attention', 'wq'), 'k_proj': ('k', 'attention', 'wk'),
    'v_proj': ('v', 'attention', 'wv'), 'o_proj': ('o', 'attention', 'wo'),
    'gate_proj': ('gate', 'feed_forward', 'w1'), 'up_proj': ('up', 'feed_forward', 'w3'),
    'down_proj': ('down', 'feed_forward', 'w2')}
_HF_OWNER = {'attention': 'self_attn', 'feed_forward': 'mlp'}
# PEFT tensor name -> mma adapter tensor name
_LINEAR_TENSORS = {'lora_A.weight': 'lora_A.weight', 'lora_B.weight': 'lora_B.weight',
                   'lora_magnitude_vector': 'magnitude', 'ia3_l': 'ia3_l'}
_KEY = re.compile(r'layers\.(\d+)\.(self_attn|mlp)\.(\w+_proj)\.(.+)$')
_PREFIX_KEY = re.compile(r'layers\.(\d+)\.self_attn\.(adaption_prompt|adaption_gate)$')


def _rotary_heads(target: str, n_heads: int, n_kv_heads: int) -> Optional[int]:
    return {'q': n_heads, 'k': n_kv_heads}.get(target)


def _reorder_rows(t: Tensor, heads: Optional[int], to_mma: bool) -> Tensor:
    """Rows of a q/k output-indexed tensor between HF's and Meta's rotary order."""
    if heads is None:
        return t
    mat = t if t.dim() == 2 else t[:, None]
    out = hf_unpermute(mat, heads) if to_mma else hf_permute(mat, heads)
    return out if t.dim() == 2 else out[:, 0]


def peft_to_mma(state_dict: Dict[str, Tensor], n_heads: int,
                n_kv_heads: int) -> Dict[str, Tensor]:
    """PEFT adapter tensors (LoRA, DoRA, IA³, AdaptionPrompt) of a LLaMA-family model -> mma
    keys relative to the LLM (``layers.0.attention.adapter_wq.lora_B.weight``)."""
    out = {}
    for key, t in state_dict.items():
        m = _PREFIX_KEY.search(key)
        if m:
            name = 'prompt' if m.group(2) == 'adaption_prompt' else 'gate'
            out[f'layers.{m.group(1)}.attention.adapter_prefix.{name}'] = \
                t[0] if name == 'prompt' else t  # (1, P, D) -> (P, D)
            continue
        m = _KEY.search(key)
        if not m or m.group(3) not in HF_PROJECTIONS or m.group(4) not in _LINEAR_TENSORS:
            raise KeyError(f'PEFT tensor {key!r} has no place in an mma LLaMA (supported: LoRA, '
                           f'DoRA, IA³ on {", ".join(HF_PROJECTIONS)}; AdaptionPrompt)')
        layer, _, proj, name = m.groups()
        target, owner, lin = HF_PROJECTIONS[proj]
        heads = _rotary_heads(target, n_heads, n_kv_heads)
        if name == 'ia3_l':  # (out, 1) scales outputs, (1, in) inputs (feedforward modules)
            t = _reorder_rows(t[:, 0], heads, True) if t.shape[1] == 1 else t[0]
        elif name in ('lora_B.weight', 'lora_magnitude_vector'):
            t = _reorder_rows(t, heads, True)
        out[f'layers.{layer}.{owner}.adapter_{lin}.{_LINEAR_TENSORS[name]}'] = t
    return out


def mma_to_peft(state_dict: Dict[str, Tensor], n_heads: int,
                n_kv_heads: int) -> Dict[str, Tensor]:
    """mma LoRA/DoRA tensors (keys relative to the LLM) -> PEFT's keys and row order."""
    back = {(owner, lin): (proj, target)
            for proj, (target, owner, lin) in HF_PROJECTIONS.items()}
    names = {v: k for k, v in _LINEAR_TENSORS.items() if k != 'ia3_l'}
    out = {}
    for key, t in state_dict.items():
        m = re.match(r'layers\.(\d+)\.(attention|feed_forward)\.adapter_(w\w+)\.(.+)$', key)
        if not m or m.group(4) not in names:
            raise KeyError(f'{key!r} is not a LoRA/DoRA tensor of an mma LLaMA linear slot')
        layer, owner, lin, name = m.groups()
        proj, target = back[(owner, lin)]
        if name in ('lora_B.weight', 'magnitude'):
            t = _reorder_rows(t, _rotary_heads(target, n_heads, n_kv_heads), False)
        out[f'{PEFT_LAYERS}{layer}.{_HF_OWNER[owner]}.{proj}.{names[name]}'] = t.contiguous()
    return out


def read_peft_lora_config(folder: str) -> Tuple[dict, str]:
    """``(adapter config, placement)`` for mma from a PEFT LoRA/DoRA ``adapter_config.json``."""
    path = os.path.join(folder, 'adapter_config.json')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{folder}: no adapter_config.json (not a PEFT adapter folder)')
    with open(path) as f:
        cfg = json.load(f)
    if cfg.get('peft_type') != 'LORA':
        raise ValueError(f'{path}: peft_type {cfg.get("peft_type")!r}; mma loads LORA folders')
    targets = cfg.get('target_modules')
    if isinstance(targets, str):
        targets = list(HF_PROJECTIONS) if targets == 'all-linear' else None
    unsupported = {k: cfg[k] for k in ('rank_pattern', 'alpha_pattern', 'layers_to_transform',
                                       'modules_to_save') if cfg.get(k)}
    if cfg.get('bias', 'none') != 'none':
        unsupported['bias'] = cfg['bias']
    if targets is None or set(targets) - set(HF_PROJECTIONS) or unsupported:
        raise ValueError(f'{path}: mma loads LoRA on {", ".join(HF_PROJECTIONS)} (a list, or '
                         f'"all-linear"); got target_modules={cfg.get("target_modules")!r}'
                         + (f', unsupported settings {unsupported}' if unsupported else ''))
    adapter = dict(type='DoRA' if cfg.get('use_dora') else 'LoRA', rank=cfg['r'],
                   alpha=cfg['lora_alpha'], dropout=cfg.get('lora_dropout', 0.0),
                   rslora=bool(cfg.get('use_rslora', False)))
    order = [p for p in HF_PROJECTIONS if p in targets]
    return adapter, 'linear:' + ','.join(HF_PROJECTIONS[p][0] for p in order)


def load_peft_lora(llm: nn.Module, folder: str) -> nn.Module:
    """Put the LoRA/DoRA adapters of a PEFT folder into ``llm`` (an mma LLaMA with empty linear
    slots) and load their tensors, strictly: every tensor of the file has an adapter tensor and
    every adapter tensor is in the file."""
    adapter_cfg, placement = read_peft_lora_config(folder)
    for slot in llm.adapter_slots(placement):
        slot.insert(ADAPTERS.build({**adapter_cfg, **slot.sizes}))
    with open_safetensors(os.path.join(folder, 'adapter_model.safetensors'),
                          'a PEFT adapter file') as f:
        sd = {k: f.get_tensor(k) for k in f.keys()}
    sd = peft_to_mma(sd, llm.args.n_heads, llm.args.n_kv_heads)
    own = {k for k in llm.state_dict() if '.adapter_w' in k}
    want = {k for k in own if not k.endswith('magnitude_set')}
    if set(sd) != want:
        raise KeyError(f'{folder}: adapter tensors differ from the model\'s: missing '
                       f'{sorted(want - set(sd))[:5]}, unexpected {sorted(set(sd) - want)[:5]}')
    for k in own - want:  # DoRA: the magnitude comes from the file
        sd[k] = torch.ones((), dtype=torch.bool)
    llm.load_state_dict(sd, strict=False)
    return llm


def save_peft_lora(llm: nn.Module, folder: str, placement: str,
                   base_model_name_or_path: Optional[str] = None) -> None:
    """Write the LoRA/DoRA adapters in ``llm``'s slots of ``placement`` as a PEFT folder
    (``adapter_config.json`` + ``adapter_model.safetensors``) that PEFT loads onto the
    transformers model of the same weights."""
    from safetensors.torch import save_file
    slots = [s for s in llm.adapter_slots(placement) if s.adapter is not None]
    if not slots:
        raise ValueError(f'no adapter in the {placement!r} slots of the model')
    first = slots[0].adapter
    types = {type(s.adapter).__name__ for s in slots}
    if not types <= {'LoRA', 'DoRA'} or len(types) > 1:
        raise TypeError(f'save_peft_lora saves LoRA or DoRA adapters, found {sorted(types)}')
    paths = {id(m): n for n, m in llm.named_modules()}
    sd = {}
    for s in slots:
        a = s.adapter
        if (a.rank, a.alpha, a.rslora) != (first.rank, first.alpha, first.rslora):
            raise ValueError('save_peft_lora: every adapter needs the same rank, alpha, rslora')
        if hasattr(a, '_take_magnitude'):  # DoRA never run: its magnitude is the frozen norm
            a._take_magnitude(getattr(s.parent, s.folds_into[0]).weight)
        prefix = paths[id(a)] + '.'
        sd.update({prefix + n: t.detach().cpu() for n, t in a.state_dict().items()
                   if n != 'magnitude_set'})
    targets = sorted({proj for proj, (t, _, _) in HF_PROJECTIONS.items()
                      if any(s.sizes['target'] == t for s in slots)})
    cfg = dict(peft_type='LORA', task_type='CAUSAL_LM', r=first.rank, lora_alpha=first.alpha,
               target_modules=targets, lora_dropout=float(getattr(first.dropout, 'p', 0.0)),
               use_rslora=first.rslora, use_dora=isinstance(first, ADAPTERS.get('DoRA')),
               bias='none', fan_in_fan_out=False, inference_mode=True,
               base_model_name_or_path=base_model_name_or_path)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, 'adapter_config.json'), 'w') as f:
        json.dump(cfg, f, indent=2)
    save_file(mma_to_peft(sd, llm.args.n_heads, llm.args.n_kv_heads),
              os.path.join(folder, 'adapter_model.safetensors'))

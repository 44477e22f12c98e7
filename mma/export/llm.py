"""mma's LLaMA-like LLM (merged or not) as a transformers causal LM: config and state dict.

The family's key map (:mod:`mma.llms.families`, HF -> mma) is read backwards: each HF tensor is
the mma tensor it names, or the concatenation of the pieces of a fused tensor (Phi-3's
``qkv_proj`` and ``gate_up_proj``), with q/k rows (and biases) permuted back to HF's rotary
layout (:func:`mma.llms.hf_format.hf_permute`).

Folding LaVIN's adapters (:mod:`mma.models.merge`) gives the layers they feed a bias: q/k/v for the
``attn`` placement, w1/w3 (gate/up) for ``ffn``. Where the family's own architecture has those
biases (Qwen2's q/k/v), the model is written as that architecture; otherwise as
``LlamaForCausalLM`` with ``attention_bias`` (a bias on q, k, v **and** o: o's is zero) and/or
``mlp_bias`` (gate, up **and** down: down's is zero), the LLaMA block mma computes for every family.
``attention_bias`` exists in transformers since 4.34, ``mlp_bias`` since 4.41.
"""
import json
import os
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from mma.errors import MMAUserError
from mma.llms.families import FAMILIES, family_for
from mma.llms.family import LLAMA_LAYER_KEYS, LLMFamily, Split
from mma.llms.hf_format import hf_permute
from mma.slots import AdapterSlot, adapters_left

#: Family name -> the transformers class of its own architecture.
HF_ARCHITECTURES = {'llama': 'LlamaForCausalLM', 'mistral': 'MistralForCausalLM',
                    'qwen2': 'Qwen2ForCausalLM', 'phi3': 'Phi3ForCausalLM'}

#: LlamaForCausalLM's bias keys under ``attention_bias`` / ``mlp_bias`` (HF -> mma).
LLAMA_ATTENTION_BIAS = {f'self_attn.{h}_proj.bias': f'attention.w{m}.bias'
                        for h, m in (('q', 'q'), ('k', 'k'), ('v', 'v'), ('o', 'o'))}
LLAMA_MLP_BIAS = {'mlp.gate_proj.bias': 'feed_forward.w1.bias',
                  'mlp.down_proj.bias': 'feed_forward.w2.bias',
                  'mlp.up_proj.bias': 'feed_forward.w3.bias'}

#: Fields of the source ``config.json`` kept in the exported one (ids of special tokens).
_KEPT_FIELDS = ('bos_token_id', 'eos_token_id', 'pad_token_id')
#: Fields kept only when the architecture is the source's own (its attention window).
_OWN_ARCH_FIELDS = ('sliding_window', 'use_sliding_window', 'max_window_layers')


def source_config(llm: nn.Module) -> Optional[dict]:
    """The ``config.json`` of the HF folder the LLM's base weights came from, if any."""
    path = getattr(llm, 'weights_path', None)
    file = os.path.join(path, 'config.json') if path else None
    if file is None or not os.path.isfile(file):
        return None
    with open(file, encoding='utf-8') as f:
        return json.load(f)


def llm_family(llm: nn.Module, family: Optional[str] = None) -> LLMFamily:
    """The family to export as: ``family`` if given, else the source folder's ``model_type``,
    else ``'qwen2'`` for a model with q/k/v biases and ``'llama'`` otherwise."""
    if family is not None:
        if family not in FAMILIES:
            raise MMAUserError(f'export: unknown LLM family {family!r} (known: '
                               f'{", ".join(sorted(FAMILIES))})')
        return FAMILIES[family]
    cfg = source_config(llm)
    if cfg is not None:
        return family_for(cfg, os.path.join(llm.weights_path, 'config.json'))
    return FAMILIES['qwen2' if llm.args.qkv_bias else 'llama']


def _names(value: Union[str, Split]) -> List[str]:
    return [value] if isinstance(value, str) else [name for name, _ in value]


def unfoldable_message(part: str, left: List[Tuple[str, AdapterSlot]]) -> str:
    """Why a model with adapters ``left`` in ``part`` (``'the LLM'``) cannot be written, and what
    to do: a prefix never folds (LLaMA-Adapter), other adapters fold when the model is merged."""
    prefixes = [p for p, s in left if s.kind == 'prefix']
    others = [p for p, s in left if s.kind != 'prefix']
    msg = f'export: {part} still holds {len(left)} adapters ({", ".join(p for p, _ in left[:3])}' \
          f'{", ..." if len(left) > 3 else ""}); a transformers architecture has no place for them.'
    if prefixes:
        msg += (f' {len(prefixes)} are LLaMA-Adapter prefixes ({prefixes[0]}): attention over '
                'learned prefix tokens with its own gate, which never folds into the frozen '
                'weights (mma.adapters.llama_adapter), so this model runs in mma only.')
    if others:
        msg += (f' {len(others)} fold into the frozen weights once the model is merged for one '
                "modality: load it with mma.load_model(..., merge='text' or 'image') (as "
                'tools/export_hf.py does).')
    return msg


def _layer_tensors(llm: nn.Module) -> List[Dict[str, Tensor]]:
    """Each block's tensors, keys after ``layers.{i}.``; adapters left in any slot (block,
    linear, prefix) are an error naming them."""
    left = adapters_left(llm, llm.adapter_slots('all'))
    if left:
        raise MMAUserError(unfoldable_message('the LLM', left))
    return [dict(blk.state_dict()) for blk in llm.layers]


def plan_llm(llm: nn.Module, family: Optional[str] = None) -> Tuple[str, dict, Dict]:
    """``(architecture, extra config fields, layer key map HF -> mma)`` for an mma LLM.

    The family's own architecture when every block tensor is in its key map; else LLaMA with the
    bias flags the folds need (zero biases where the flag adds more than the fold gives)."""
    fam = llm_family(llm, family)
    have = set().union(*(set(t) for t in _layer_tensors(llm)))
    arch = HF_ARCHITECTURES.get(fam.name)
    covered = {n for v in fam.layer_keys.values() for n in _names(v)}
    if arch is not None and have <= covered:
        return arch, dict(model_type=fam.model_types[0]), dict(fam.layer_keys)
    keys = dict(LLAMA_LAYER_KEYS)
    attention_bias = any(f'attention.w{p}.bias' in have for p in 'qkvo')
    mlp_bias = any(f'feed_forward.w{p}.bias' in have for p in '123')
    if attention_bias:
        keys.update(LLAMA_ATTENTION_BIAS)
    if mlp_bias:
        keys.update(LLAMA_MLP_BIAS)
    return 'LlamaForCausalLM', dict(model_type='llama', attention_bias=attention_bias,
                                    mlp_bias=mlp_bias), keys


def llm_hf_config(llm: nn.Module, family: Optional[str] = None) -> Tuple[str, dict]:
    """``(architecture, config.json fields)`` of the exported LLM (see :func:`plan_llm`)."""
    arch, extra, _ = plan_llm(llm, family)
    a = llm.args
    rope = dict(rope_type='default', rope_theta=float(a.rope_theta))
    if a.rope_scaling is not None:
        rope.update(a.rope_scaling)
    cfg = dict(architectures=[arch], vocab_size=a.vocab_size, hidden_size=a.dim,
               intermediate_size=a.ffn_hidden_dim, num_hidden_layers=a.n_layers,
               num_attention_heads=a.n_heads, num_key_value_heads=a.n_kv_heads,
               head_dim=a.head_dim, hidden_act='silu', max_position_embeddings=a.max_seq_len,
               rms_norm_eps=a.norm_eps, tie_word_embeddings=bool(a.tie_embeddings),
               rope_parameters=rope, **extra)
    if extra['model_type'] in ('mistral', 'phi3', 'qwen2'):
        cfg.update(sliding_window=None, use_sliding_window=False)  # mma attends fully
    src = source_config(llm)
    if src is not None:
        cfg.update({k: src[k] for k in _KEPT_FIELDS if k in src})
        if src.get('model_type') == extra['model_type']:
            # the source's window is kept with its own architecture (mma's max_seq_len is
            # capped at it, so the sequences mma runs attend alike)
            cfg.update({k: src[k] for k in _OWN_ARCH_FIELDS if k in src})
            cfg['max_position_embeddings'] = src.get('max_position_embeddings', a.max_seq_len)
    return arch, cfg


def llm_hf_state_dict(llm: nn.Module, family: Optional[str] = None,
                      prefix: str = 'model.') -> Dict[str, Tensor]:
    """The LLM's tensors under HF keys (``{prefix}layers.{i}...``, ``lm_head.weight``).

    Raises:
        MMAUserError: a block tensor the chosen architecture has no place for (never for the
            biases LaVIN's folds give), or an adapter still in a block.
    """
    _, _, keys = plan_llm(llm, family)
    a = llm.args
    sd = {f'{prefix}embed_tokens.weight': llm.tok_embeddings.weight,
          f'{prefix}norm.weight': llm.norm.weight, 'lm_head.weight': llm.output.weight}
    for i, (blk, own) in enumerate(zip(llm.layers, _layer_tensors(llm))):
        used = set()
        for hf_key, value in keys.items():
            pieces = []
            for name in _names(value):
                t = own.get(name)
                if t is None:  # a bias the flag adds and no fold gave: zero
                    if not name.endswith('.bias'):
                        raise MMAUserError(f'export: LLM block {i} has no tensor {name!r}')
                    weight = blk.get_submodule(name.rsplit('.', 1)[0]).weight
                    t = weight.new_zeros(weight.shape[0])
                used.add(name)
                if name.startswith(('attention.wq.', 'attention.wk.')):
                    heads = a.n_heads if '.wq.' in name else a.n_kv_heads
                    t = hf_permute(t, heads) if t.dim() == 2 else \
                        hf_permute(t[:, None], heads)[:, 0]
                pieces.append(t)
            sd[f'{prefix}layers.{i}.{hf_key}'] = pieces[0] if len(pieces) == 1 else \
                torch.cat(pieces, dim=0)
        left = sorted(set(own) - used)
        if left:
            raise MMAUserError(f'export: LLM block {i} tensors {left} have no place in the '
                               'exported architecture')
    return sd

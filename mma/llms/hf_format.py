"""The HF layout of LLaMA-family weights: ``config.json`` + ``*.safetensors`` /
``pytorch_model*.bin`` (sharded with an index), keys mapped to mma's (= Meta's) names and q/k rows
un-permuted to Meta's rotary layout."""
import json
import os
import re
from typing import Iterator, List, Optional, Tuple

from torch import Tensor

from mma.fileio import open_safetensors

from .meta_format import Cast, _mmap_load, _release

# HF name (after ``model.layers.{i}.``) -> Meta name (after ``layers.{i}.``).
_HF_LAYER_KEYS = {
    'self_attn.q_proj.weight': 'attention.wq.weight',
    'self_attn.k_proj.weight': 'attention.wk.weight',
    'self_attn.v_proj.weight': 'attention.wv.weight',
    'self_attn.q_proj.bias': 'attention.wq.bias',  # Qwen2
    'self_attn.k_proj.bias': 'attention.wk.bias',
    'self_attn.v_proj.bias': 'attention.wv.bias',
    'self_attn.o_proj.weight': 'attention.wo.weight',
    'mlp.gate_proj.weight': 'feed_forward.w1.weight',
    'mlp.down_proj.weight': 'feed_forward.w2.weight',
    'mlp.up_proj.weight': 'feed_forward.w3.weight',
    'input_layernorm.weight': 'attention_norm.weight',
    'post_attention_layernorm.weight': 'ffn_norm.weight',
}
_HF_TOP_KEYS = {'model.embed_tokens.weight': 'tok_embeddings.weight',
                'model.norm.weight': 'norm.weight', 'lm_head.weight': 'output.weight'}


def hf_unpermute(w: Tensor, n_heads: int) -> Tensor:
    """Undo HF's rotary permutation of q/k rows (``convert_llama_weights_to_hf.permute``):
    HF keeps each head's rotary halves apart, Meta interleaves pairs."""
    out_dim, in_dim = w.shape
    return w.view(n_heads, 2, out_dim // n_heads // 2, in_dim).transpose(1, 2).reshape(
        out_dim, in_dim)


def hf_permute(w: Tensor, n_heads: int) -> Tensor:
    """Meta -> HF row order of q/k (the inverse of :func:`hf_unpermute`)."""
    out_dim, in_dim = w.shape
    return w.view(n_heads, out_dim // n_heads // 2, 2, in_dim).transpose(1, 2).reshape(
        out_dim, in_dim)


def hf_weight_files(path: str) -> List[str]:
    """The weight files of an HF folder: from an index if there is one, safetensors first."""
    for index, single in (('model.safetensors.index.json', 'model.safetensors'),
                          ('pytorch_model.bin.index.json', 'pytorch_model.bin')):
        if os.path.isfile(os.path.join(path, index)):
            with open(os.path.join(path, index)) as f:
                files = sorted(set(json.load(f)['weight_map'].values()))
            missing = [f for f in files if not os.path.isfile(os.path.join(path, f))]
            if missing:
                raise FileNotFoundError(f'{path}: {index} names missing shard files {missing}')
            return [os.path.join(path, f) for f in files]
        if os.path.isfile(os.path.join(path, single)):
            return [os.path.join(path, single)]
    raise FileNotFoundError(f'no HF weights in {path}: expected model.safetensors, '
                            'pytorch_model.bin or a *.index.json with its shards')


def _iter_hf_file(file: str) -> Iterator[Tuple[str, Tensor, bool]]:
    """``(key, tensor, memory-mapped)`` for each tensor of one HF weights file."""
    if file.endswith('.safetensors'):
        with open_safetensors(file, 'a LLaMA weights file (safetensors)') as f:
            for key in f.keys():
                yield key, f.get_tensor(key), False
    else:
        sd = _mmap_load(file)
        for key in list(sd):
            yield key, sd.pop(key), True


def hf_key_to_meta(key: str) -> Optional[str]:
    """mma/Meta name of an HF LLaMA key; None for keys to skip (``rotary_emb.inv_freq``)."""
    if key in _HF_TOP_KEYS:
        return _HF_TOP_KEYS[key]
    m = re.fullmatch(r'model\.layers\.(\d+)\.(.+)', key)
    if m and m.group(2) in _HF_LAYER_KEYS:
        return f'layers.{m.group(1)}.{_HF_LAYER_KEYS[m.group(2)]}'
    if key.endswith('rotary_emb.inv_freq'):
        return None
    raise KeyError(f'unexpected key {key!r} in an HF LLaMA-family checkpoint')


def iter_hf_state_dict(path: str, cast: Cast) -> Iterator[Tuple[str, Tensor]]:
    """Yield ``(meta_key, tensor)`` from an HF folder, q/k rows un-permuted, cast once."""
    files = hf_weight_files(path)
    with open(os.path.join(path, 'config.json'), encoding='utf-8') as f:
        cfg = json.load(f)
    n_heads = cfg['num_attention_heads']
    n_kv_heads = cfg.get('num_key_value_heads') or n_heads
    seen_output = False
    embed = None
    for file in files:
        for key, raw, mapped in _iter_hf_file(file):
            t = raw
            name = hf_key_to_meta(key)
            if name is None:
                continue
            if name.endswith(('attention.wq.weight', 'attention.wk.weight',
                              'attention.wq.bias', 'attention.wk.bias')):
                heads = n_heads if '.wq.' in name else n_kv_heads
                t = hf_unpermute(t, heads) if t.dim() == 2 else hf_unpermute(t[:, None], heads)[:, 0]
            t = cast(t)
            seen_output |= name == 'output.weight'
            if name == 'tok_embeddings.weight':
                embed = t
            yield name, t
            if mapped and name != 'tok_embeddings.weight':
                _release(raw, t)
    if not seen_output and cfg.get('tie_word_embeddings') and embed is not None:
        yield 'output.weight', embed

"""The HF layout of LLaMA-like weights: ``config.json`` + ``*.safetensors`` /
``pytorch_model*.bin`` (sharded with an index), keys mapped to mma's (= Meta's) names by the
family's key map (:mod:`mma.llms.families`), fused tensors split and q/k rows un-permuted to Meta's
rotary layout."""
import json
import os
import re
from typing import Iterator, List, Optional, Tuple, Union

from torch import Tensor

from mma.fileio import open_safetensors

from .args import LLaMAArgs
from .families import family_for
from .family import LLAVA_TYPES, LLMFamily, Split, llm_config, split_rows
from .meta_format import Cast, _mmap_load, _release

#: Keys outside the blocks, the same in every LLaMA-like family.
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


#: A LLaVA folder's LLM keys -> a causal LM's: llava-hf saved by transformers 4 or 5
#: (``language_model.model.*``) and transformers 5's in-memory names (``model.language_model.*``).
_LLAVA_LLM_PREFIXES = (('language_model.model.', 'model.'), ('language_model.lm_head.', 'lm_head.'),
                       ('model.language_model.', 'model.'))
#: The other parts of a LLaVA folder (tower, projector), which the LLM's reader skips.
_LLAVA_OTHER = ('vision_tower.', 'multi_modal_projector.', 'model.vision_tower.',
                'model.multi_modal_projector.', 'model.mm_projector.', 'model.image_newline')


def llava_llm_key(key: str) -> Optional[str]:
    """A LLaVA folder's key as the causal LM's key, None for the tower's and projector's."""
    if key.startswith(_LLAVA_OTHER):
        return None
    for old, new in _LLAVA_LLM_PREFIXES:
        if key.startswith(old):
            return new + key[len(old):]
    return key


def hf_key_to_mma(key: str, family: LLMFamily) -> Union[None, str, Tuple[str, Split]]:
    """mma's name of an HF key by the family's key map: a name, ``(layer prefix, split)`` for a
    fused tensor, or None for keys to skip (``rotary_emb.inv_freq``)."""
    if key in _HF_TOP_KEYS:
        return _HF_TOP_KEYS[key]
    m = re.fullmatch(r'model\.layers\.(\d+)\.(.+)', key)
    if m and m.group(2) in family.layer_keys:
        name = family.layer_keys[m.group(2)]
        prefix = f'layers.{m.group(1)}.'
        return prefix + name if isinstance(name, str) else (prefix, name)
    if key.endswith('rotary_emb.inv_freq'):
        return None
    raise KeyError(f'unexpected key {key!r} in an HF {family.name} checkpoint')


def _split(key: str, t: Tensor, prefix: str, split: Split, args) -> Iterator[Tuple[str, Tensor]]:
    """The pieces of a fused tensor (rows of ``q|k|v`` or ``gate|up``), as mma's keys."""
    rows = split_rows(split, args)
    if sum(rows) != t.shape[0]:
        raise ValueError(f'{key}: {t.shape[0]} rows, but the sizes in config.json give '
                         f'{" + ".join(map(str, rows))} for {[n for n, _ in split]}')
    for (name, _), piece in zip(split, t.split(rows, dim=0)):
        yield prefix + name, piece


def iter_hf_state_dict(path: str, cast: Cast) -> Iterator[Tuple[str, Tensor]]:
    """Yield ``(mma_key, tensor)`` from an HF folder by its family's key map: fused tensors
    split, q/k rows un-permuted, each cast once."""
    files = hf_weight_files(path)
    file = os.path.join(path, 'config.json')
    with open(file, encoding='utf-8') as f:
        cfg = json.load(f)
    llava = cfg.get('model_type') in LLAVA_TYPES  # the LLM's keys of an image-text folder
    cfg = llm_config(cfg)
    family = family_for(cfg, file)
    args = LLaMAArgs(**family.read_hf_config(cfg, file))
    seen_output = False
    embed = None
    for file in files:
        for key, raw, mapped in _iter_hf_file(file):
            name = llava_llm_key(key) if llava else key
            name = name and hf_key_to_mma(name, family)
            if name is None:
                continue
            pieces = [(name, raw)] if isinstance(name, str) else _split(key, raw, *name, args)
            kept = []
            for name, t in pieces:
                if name.endswith(('attention.wq.weight', 'attention.wk.weight',
                                  'attention.wq.bias', 'attention.wk.bias')):
                    heads = args.n_heads if '.wq.' in name else args.n_kv_heads
                    t = hf_unpermute(t, heads) if t.dim() == 2 else \
                        hf_unpermute(t[:, None], heads)[:, 0]
                t = cast(t)
                seen_output |= name == 'output.weight'
                if name == 'tok_embeddings.weight':
                    embed = t
                kept.append(t)
                yield name, t
            if mapped and name != 'tok_embeddings.weight':  # not while a piece is a view of raw
                ptr = raw.untyped_storage().data_ptr()
                _release(raw, next((t for t in kept if t.device.type == 'cpu' and
                                    t.untyped_storage().data_ptr() == ptr), kept[-1]))
    if not seen_output and args.tie_embeddings and embed is not None:
        yield 'output.weight', embed

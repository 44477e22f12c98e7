"""Reading LLaMA base weights: Meta folders (``params.json`` + ``consolidated.NN.pth``) and HF
folders (``config.json`` + ``*.safetensors`` / ``pytorch_model*.bin``, sharded with an index).

Both readers return a state dict in mma's (= Meta's) key names. Loading is frugal: shards are
memory-mapped, every tensor is merged and cast once to the target dtype, and the result is
``assign``-ed into the model, so a model built on the meta device never holds a second copy.
"""
import ctypes
import glob
import json
import os
import re
import sys
from dataclasses import fields
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor, nn

from mma.fileio import open_safetensors, torch_load

from .llama import LLaMA, LLaMAArgs

# Meta model-parallel layout (reference doc §7): the dim each shard splits; None = replicated.
_META_SHARD_DIM = {
    'tok_embeddings.weight': 1, 'output.weight': 0, 'norm.weight': None,
    'attention.wq.weight': 0, 'attention.wk.weight': 0, 'attention.wv.weight': 0,
    'attention.wo.weight': 1, 'feed_forward.w1.weight': 0, 'feed_forward.w3.weight': 0,
    'feed_forward.w2.weight': 1, 'attention_norm.weight': None, 'ffn_norm.weight': None,
    'rope.freqs': None,
}
_META_IGNORED = ('rope.freqs', )

# HF name (after ``model.layers.{i}.``) -> Meta name (after ``layers.{i}.``).
_HF_LAYER_KEYS = {
    'self_attn.q_proj.weight': 'attention.wq.weight',
    'self_attn.k_proj.weight': 'attention.wk.weight',
    'self_attn.v_proj.weight': 'attention.wv.weight',
    'self_attn.o_proj.weight': 'attention.wo.weight',
    'mlp.gate_proj.weight': 'feed_forward.w1.weight',
    'mlp.down_proj.weight': 'feed_forward.w2.weight',
    'mlp.up_proj.weight': 'feed_forward.w3.weight',
    'input_layernorm.weight': 'attention_norm.weight',
    'post_attention_layernorm.weight': 'ffn_norm.weight',
}
_HF_TOP_KEYS = {'model.embed_tokens.weight': 'tok_embeddings.weight',
                'model.norm.weight': 'norm.weight', 'lm_head.weight': 'output.weight'}

Cast = Callable[[Tensor], Tensor]


# --------------------------------------------------------------------------------------------
# Folder inspection
def checkpoint_format(path: str) -> str:
    """``'meta'`` or ``'hf'`` for a weights folder; a clear error when it is neither."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f'LLaMA checkpoint folder not found: {path}')
    if os.path.isfile(os.path.join(path, 'params.json')):
        return 'meta'
    if os.path.isfile(os.path.join(path, 'config.json')):
        return 'hf'
    raise FileNotFoundError(f'{path} is not a LLaMA checkpoint folder: expected params.json + '
                            'consolidated.NN.pth (Meta) or config.json + *.safetensors / '
                            'pytorch_model*.bin (HF)')


def find_tokenizer(path: str) -> Optional[str]:
    """``tokenizer.model`` in the folder or one level up (Meta's layout), else None."""
    for cand in (os.path.join(path, 'tokenizer.model'),
                 os.path.join(os.path.dirname(os.path.abspath(path)), 'tokenizer.model')):
        if os.path.isfile(cand):
            return cand
    return None


def read_llama_args(path: str) -> dict:
    """LLaMA hyperparameters (:class:`LLaMAArgs` fields) from ``params.json`` or ``config.json``.

    ``vocab_size`` comes from the file or, when the file has none (Meta's ``-1``), from the
    embedding matrix of the weights.
    """
    fmt = checkpoint_format(path)
    if fmt == 'meta':
        with open(os.path.join(path, 'params.json')) as f:
            raw = json.load(f)
        names = {f.name for f in fields(LLaMAArgs)}
        kw = {k: v for k, v in raw.items() if k in names}
        if kw.get('vocab_size') is None or kw['vocab_size'] < 0:
            kw['vocab_size'] = checkpoint_vocab_size(path)
        return kw
    with open(os.path.join(path, 'config.json')) as f:
        return hf_config_to_args(json.load(f), path)


def hf_config_to_args(cfg: dict, path: str = 'config.json') -> dict:
    """Translate an HF ``LlamaConfig`` dict into :class:`LLaMAArgs` fields."""
    unsupported = []
    if cfg.get('hidden_act', 'silu') != 'silu':
        unsupported.append(f"hidden_act={cfg['hidden_act']!r}")
    if cfg.get('attention_bias') or cfg.get('mlp_bias'):
        unsupported.append('attention_bias/mlp_bias')
    rope = cfg.get('rope_parameters') or {}
    scaling = cfg.get('rope_scaling')
    rope_type = rope.get('rope_type', (scaling or {}).get('rope_type', 'default'))
    if rope_type not in ('default', None) or (scaling and scaling.get('type', 'default') != 'default'):
        unsupported.append(f'rope scaling {rope_type!r}')
    if unsupported:
        raise ValueError(f'{path}: unsupported LLaMA variant ({", ".join(unsupported)})')
    dim, hidden = cfg['hidden_size'], cfg['intermediate_size']
    kw = dict(dim=dim, n_layers=cfg['num_hidden_layers'], n_heads=cfg['num_attention_heads'],
              n_kv_heads=cfg.get('num_key_value_heads') or cfg['num_attention_heads'],
              vocab_size=cfg['vocab_size'], norm_eps=cfg.get('rms_norm_eps', 1e-6),
              rope_theta=rope.get('rope_theta', cfg.get('rope_theta', 10000.0)),
              max_seq_len=cfg.get('max_position_embeddings', 2048))
    if cfg.get('head_dim') not in (None, dim // kw['n_heads']):
        raise ValueError(f"{path}: head_dim={cfg['head_dim']} != hidden_size / num_heads")
    kw.update(_ffn_args(dim, hidden))
    return kw


def _ffn_args(dim: int, hidden: int) -> dict:
    """``multiple_of`` / ``ffn_dim_multiplier`` that give FFN width ``hidden`` (HF states it)."""
    if LLaMAArgs(dim=dim, n_heads=1, multiple_of=256).ffn_hidden_dim == hidden:
        return dict(multiple_of=256, ffn_dim_multiplier=None)
    base = int(2 * 4 * dim / 3)  # LLaMAArgs rounds ceil(mult * base / hidden) * hidden = hidden
    return dict(multiple_of=hidden, ffn_dim_multiplier=None if base <= hidden else hidden / base)


# --------------------------------------------------------------------------------------------
# Meta format
def meta_shards(path: str) -> List[str]:
    shards = sorted(glob.glob(os.path.join(path, 'consolidated.*.pth')))
    if not shards:
        raise FileNotFoundError(f'no consolidated.NN.pth shards in Meta LLaMA folder {path}')
    found = {int(m.group(1)) for m in (re.fullmatch(r'consolidated\.(\d+)\.pth',
                                                    os.path.basename(f)) for f in shards) if m}
    gaps = sorted(set(range(max(found) + 1)) - found) if found else []
    if gaps:
        raise FileNotFoundError(f'{path}: shard consolidated.{gaps[0]:02d}.pth is missing (Meta '
                                f'LLaMA shards are numbered from 00; found '
                                f'{[os.path.basename(f) for f in shards]})')
    return shards


def _shard_dim(key: str, path: str) -> Optional[int]:
    short = re.sub(r'^layers\.\d+\.', '', key)
    if short not in _META_SHARD_DIM:
        raise KeyError(f'{path}: unexpected key {key!r} in a Meta LLaMA checkpoint')
    return _META_SHARD_DIM[short]


def _mmap_load(file: str) -> Dict[str, Tensor]:
    return torch_load(file, 'a LLaMA weights file', mmap=True, weights_only=True)


def _release(src: Tensor, kept: Tensor) -> None:
    """Drop the resident pages of a memory-mapped ``src`` once it has been copied into ``kept``.

    Pages of a private file mapping that are read stay in the process RSS until the whole shard
    is unmapped; ``madvise(MADV_DONTNEED)`` gives them back now (a later read would fault them in
    from the file again). A no-op where ``kept`` still uses ``src``'s memory or off Linux.
    """
    if _LIBC is None or src.device.type != 'cpu':
        return
    st = src.untyped_storage()
    if kept.device.type == 'cpu' and kept.untyped_storage().data_ptr() == st.data_ptr():
        return
    start = src.data_ptr()
    end = start + src.numel() * src.element_size()
    start = (start + _PAGE - 1) // _PAGE * _PAGE  # whole pages inside the tensor only
    end = end // _PAGE * _PAGE
    if end > start:
        _LIBC.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), 4)  # MADV_DONTNEED


def _libc():
    if not sys.platform.startswith('linux'):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()
_PAGE = os.sysconf('SC_PAGE_SIZE') if hasattr(os, 'sysconf') else 4096


def iter_meta_state_dict(path: str, cast: Cast) -> Iterator[Tuple[str, Tensor]]:
    """Yield ``(key, tensor)`` merged over model-parallel shards, each cast once by ``cast``."""
    shards = [_mmap_load(f) for f in meta_shards(path)]
    keys = list(shards[0])
    for i, sd in enumerate(shards[1:], 1):
        if set(sd) != set(keys):
            raise KeyError(f'{path}: shard {i} has different keys from shard 0: '
                           f'{sorted(set(sd) ^ set(keys))[:5]}')
    for key in keys:
        if key in _META_IGNORED:
            continue
        dim = _shard_dim(key, path)
        pieces = [sd.pop(key) for sd in shards]
        if dim is None or len(pieces) == 1:
            out = cast(pieces[0])
            for p in pieces:
                _release(p, out)
            yield key, out
        else:  # copy (and convert) each piece into its slot of one preallocated target tensor
            shape = list(pieces[0].shape)
            shape[dim] = sum(p.shape[dim] for p in pieces)
            out = cast(pieces[0].narrow(dim, 0, 0)).new_empty(shape)
            start = 0
            for p in pieces:
                out.narrow(dim, start, p.shape[dim]).copy_(p)
                start += p.shape[dim]
                _release(p, out)
            yield key, out
        del pieces


def save_meta_checkpoint(state_dict: Dict[str, Tensor], path: str, params: dict,
                         num_shards: int = 1) -> None:
    """Write a Meta-layout folder (``params.json`` + ``consolidated.NN.pth``), split along the
    model-parallel dims as Meta's 13B/30B/65B files are. For tests, tools and benchmarks."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, 'params.json'), 'w') as f:
        json.dump(params, f)
    shards: List[Dict[str, Tensor]] = [{} for _ in range(num_shards)]
    for key, t in state_dict.items():
        dim = _shard_dim(key, path)
        if dim is None:
            parts = [t] * num_shards
        else:
            if t.shape[dim] % num_shards:
                raise ValueError(f'{key}: dim {dim} of {tuple(t.shape)} not divisible by '
                                 f'{num_shards} shards')
            parts = t.chunk(num_shards, dim)
        for sd, p in zip(shards, parts):
            sd[key] = p.clone()
    for i, sd in enumerate(shards):
        torch.save(sd, os.path.join(path, f'consolidated.{i:02d}.pth'))
        sd.clear()


# --------------------------------------------------------------------------------------------
# HF format
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
    raise KeyError(f'unexpected key {key!r} in an HF LLaMA checkpoint')


def iter_hf_state_dict(path: str, cast: Cast) -> Iterator[Tuple[str, Tensor]]:
    """Yield ``(meta_key, tensor)`` from an HF folder, q/k rows un-permuted, cast once."""
    files = hf_weight_files(path)
    with open(os.path.join(path, 'config.json')) as f:
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
            if name.endswith('attention.wq.weight'):
                t = hf_unpermute(t, n_heads)
            elif name.endswith('attention.wk.weight'):
                t = hf_unpermute(t, n_kv_heads)
            t = cast(t)
            seen_output |= name == 'output.weight'
            if name == 'tok_embeddings.weight':
                embed = t
            yield name, t
            if mapped and name != 'tok_embeddings.weight':
                _release(raw, t)
    if not seen_output and cfg.get('tie_word_embeddings') and embed is not None:
        yield 'output.weight', embed


# --------------------------------------------------------------------------------------------
# Loading into a model
def checkpoint_vocab_size(path: str) -> int:
    """Rows of ``tok_embeddings`` in a Meta or HF folder (read from mmap'd shapes only)."""
    if checkpoint_format(path) == 'meta':
        sd = _mmap_load(meta_shards(path)[0])
        return sd['tok_embeddings.weight'].shape[0]
    with open(os.path.join(path, 'config.json')) as f:
        return json.load(f)['vocab_size']


def check_tokenizer_vocab(tokenizer, vocab_size: int, what: str) -> None:
    """Raise when a tokenizer's vocabulary differs from ``vocab_size`` rows.

    Args:
        tokenizer: A SentencePiece ``tokenizer.model`` path or a tokenizer object.
        vocab_size: Rows of the LLM's embedding table.
        what: Names the weights in the message (``'checkpoint PATH'``, ``'model.llm'``).
    """
    if isinstance(tokenizer, str):
        from .tokenizer import SentencePieceTokenizer
        tokenizer = SentencePieceTokenizer(tokenizer)
    n = tokenizer.vocab_size
    if n != vocab_size:
        name = getattr(tokenizer, 'model_path', type(tokenizer).__name__)
        raise ValueError(f'tokenizer {name} has {n} pieces but {what} has '
                         f'vocab_size {vocab_size}: use the tokenizer.model that ships with '
                         'these weights')


def load_llama_weights(model: LLaMA, path: str, dtype: Optional[torch.dtype] = None) -> None:
    """Load a Meta or HF folder into ``model`` (possibly on the meta device), strictly.

    Every base (non-adapter) parameter of the model must be in the file with the same shape, and
    every tensor of the file must be a model parameter. Adapter slots are left as they are.
    Parameters on the meta device (or of another dtype) are replaced by the loaded tensors
    (``assign``: no second copy); allocated ones are copied into in place, one tensor at a time,
    so parameter objects held elsewhere (an optimizer) stay valid.

    Args:
        model: The LLaMA to fill.
        path: Meta or HF folder.
        dtype: Target dtype; default: the model's current parameter dtype.
    """
    fmt = checkpoint_format(path)
    ref = model.tok_embeddings.weight
    dtype = dtype or ref.dtype
    device = torch.device('cpu') if ref.is_meta else ref.device
    own = {k: v for k, v in model.state_dict().items() if '.adapter_' not in k}
    tok = find_tokenizer(path)
    if tok is not None:
        check_tokenizer_vocab(tok, checkpoint_vocab_size(path), f'checkpoint {path}')

    def cast(t: Tensor) -> Tensor:
        return t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)

    items = iter_meta_state_dict(path, cast) if fmt == 'meta' else iter_hf_state_dict(path, cast)
    seen, to_assign = set(), {}
    for key, t in items:
        if key not in own:
            raise KeyError(f'{path}: key {key!r} has no place in the model (a different '
                           f'architecture? model has {model.args.n_layers} layers)')
        if tuple(t.shape) != tuple(own[key].shape):
            if key in ('tok_embeddings.weight', 'output.weight') and \
                    t.shape[0] != own[key].shape[0]:
                raise ValueError(f'{path}: {key} has {t.shape[0]} vocabulary rows but the model '
                                 f'has vocab_size {own[key].shape[0]}; set vocab_size to match '
                                 'the checkpoint and its tokenizer')
            hint = ''
            if fmt == 'meta':
                hint = (f' ({len(meta_shards(path))} consolidated.NN.pth shards found: a shard '
                        'missing, or the folder of another model size?)')
            raise ValueError(f'{path}: shape mismatch for {key}: checkpoint {tuple(t.shape)} vs '
                             f'model {tuple(own[key].shape)}{hint}')
        seen.add(key)
        p = own[key]
        if p.is_meta or p.dtype != t.dtype:
            to_assign[key] = t  # no second copy: the loaded tensor becomes the parameter
        else:  # keep the parameter objects (an optimizer may already hold them)
            with torch.no_grad():
                p.copy_(t)
        del t
    missing = sorted(set(own) - seen)
    if missing:
        raise KeyError(f'{path}: checkpoint lacks {len(missing)} model weights, e.g. '
                       f'{missing[:5]}')
    if to_assign:
        model.load_state_dict(to_assign, strict=False, assign=True)


def build_llama_from_folder(path: str, tokenizer: Optional[str] = None,
                            dtype: torch.dtype = torch.float32, **overrides) -> LLaMA:
    """An mma LLaMA with hyperparameters and weights from a Meta or HF folder.

    Args:
        path: The weights folder.
        tokenizer: ``tokenizer.model`` to check the vocabulary against (default: the one in the
            folder or its parent, if any).
        dtype: Dtype of the weights.
        **overrides: Other ``LLaMA`` arguments (``attn_backend``, ``max_seq_len``, ...).
    """
    kw = read_llama_args(path)
    tokenizer = tokenizer or find_tokenizer(path)
    if tokenizer is not None:
        check_tokenizer_vocab(tokenizer, kw['vocab_size'], f'checkpoint {path}')
    kw.update(overrides)
    with torch.device('meta'):
        model = LLaMA(checkpoint=path, **kw)
    load_llama_weights(model, path, dtype)
    return model


def meta_params(args: LLaMAArgs) -> dict:
    """A ``params.json`` dict for ``args`` (Meta's field names)."""
    return dict(dim=args.dim, n_layers=args.n_layers, n_heads=args.n_heads,
                n_kv_heads=args.n_kv_heads, vocab_size=args.vocab_size,
                multiple_of=args.multiple_of, ffn_dim_multiplier=args.ffn_dim_multiplier,
                norm_eps=args.norm_eps, rope_theta=args.rope_theta)


def base_state_dict(model: nn.Module) -> Dict[str, Tensor]:
    """A LLaMA's state dict without adapter tensors (what a Meta checkpoint holds)."""
    return {k: v for k, v in model.state_dict().items() if '.adapter_' not in k}

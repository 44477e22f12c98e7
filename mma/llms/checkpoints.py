"""Reading LLaMA base weights: Meta folders (``params.json`` + ``consolidated.NN.pth``) and HF
folders (``config.json`` + ``*.safetensors`` / ``pytorch_model*.bin``, sharded with an index).

Both readers return a state dict in mma's (= Meta's) key names. Loading is frugal: shards are
memory-mapped, every tensor is merged and cast once to the target dtype, and the result is
``assign``-ed into the model, so a model built on the meta device never holds a second copy.
"""
import json
import os
from dataclasses import fields
from typing import Optional

import torch
from torch import Tensor, nn

from .args import LLaMAArgs
from .hf_format import hf_permute, hf_unpermute, iter_hf_state_dict  # noqa: F401  (re-exported)
from .meta_format import _mmap_load, iter_meta_state_dict, meta_shards, save_meta_checkpoint  # noqa: F401,E501


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
    """``tokenizer.model`` or ``tokenizer.json`` in the folder or one level up (Meta's layout),
    else None."""
    from .tokenizer import find_tokenizer_file
    return find_tokenizer_file(path)


def read_llama_args(path: str) -> dict:
    """The sizes a Meta or HF folder states (:class:`~mma.llms.args.LLaMAArgs` fields).

    Meta's ``params.json`` leaves some fields implicit, as Meta's code reads them: ``n_kv_heads``
    = ``n_heads``, ``rope_theta`` = 10000, no ``ffn_dim_multiplier``; ``vocab_size`` (-1 there)
    comes from the embedding matrix of the weights (a memory-mapped shape, no tensor read). The
    ``_source`` key names the file, for error messages.
    """
    fmt = checkpoint_format(path)
    if fmt == 'meta':
        file = os.path.join(path, 'params.json')
        raw = _read_json(file)
        names = {f.name for f in fields(LLaMAArgs)}
        kw = {k: v for k, v in raw.items() if k in names}
        kw.setdefault('n_kv_heads', kw.get('n_heads'))
        kw.setdefault('rope_theta', 10000.0)
        kw.setdefault('ffn_dim_multiplier', None)
        if raw.get('use_scaled_rope'):  # LLaMA-3.1+: Meta's code hard-codes these numbers
            kw['rope_scaling'] = dict(rope_type='llama3', factor=8.0, low_freq_factor=1.0,
                                      high_freq_factor=4.0, original_max_position_embeddings=8192)
        if kw.get('vocab_size') is None or kw['vocab_size'] < 0:
            kw['vocab_size'] = checkpoint_vocab_size(path)
    else:
        file = os.path.join(path, 'config.json')
        kw = hf_config_to_args(_read_json(file), file)
    if kw.get('n_kv_heads') is None:
        kw.pop('n_kv_heads', None)
    kw['_source'] = file
    return kw


def _read_json(file: str) -> dict:
    try:
        with open(file, encoding='utf-8') as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f'{file} is not valid UTF-8 JSON: {err}') from None


#: HF ``model_type`` s that are the LLaMA block with switches (:class:`LLaMAArgs`).
HF_FAMILIES = ('llama', 'mistral', 'qwen2')


def hf_config_to_args(cfg: dict, path: str = 'config.json') -> dict:
    """Translate an HF ``config.json`` of the LLaMA family (LLaMA-1/2/3.x, Vicuna, Mistral,
    Qwen2/2.5) into :class:`LLaMAArgs` fields. RoPE settings are read in both forms: top-level
    ``rope_theta`` / ``rope_scaling`` (folders written by transformers 4) and
    ``rope_parameters`` (transformers 5)."""
    family = cfg.get('model_type', 'llama')
    unsupported = []
    if family not in HF_FAMILIES:
        unsupported.append(f'model_type={family!r} (supported: {", ".join(HF_FAMILIES)})')
    if cfg.get('hidden_act', 'silu') != 'silu':
        unsupported.append(f"hidden_act={cfg['hidden_act']!r}")
    if family != 'qwen2' and cfg.get('attention_bias'):
        unsupported.append('attention_bias (a bias on o_proj too)')
    if cfg.get('mlp_bias'):
        unsupported.append('mlp_bias')
    rope = dict(cfg.get('rope_parameters') or {})
    scaling = dict(cfg.get('rope_scaling') or {})
    rope.update({k: v for k, v in scaling.items() if k not in rope})
    rope_type = rope.get('rope_type', rope.get('type', 'default'))
    if rope_type not in ('default', 'llama3', None):
        unsupported.append(f'rope scaling {rope_type!r}')
    if unsupported:
        raise ValueError(f'{path}: unsupported LLaMA-family variant ({", ".join(unsupported)})')
    dim, hidden = cfg['hidden_size'], cfg['intermediate_size']
    kw = dict(dim=dim, n_layers=cfg['num_hidden_layers'], n_heads=cfg['num_attention_heads'],
              n_kv_heads=cfg.get('num_key_value_heads') or cfg['num_attention_heads'],
              vocab_size=cfg['vocab_size'], norm_eps=cfg.get('rms_norm_eps', 1e-6),
              rope_theta=float(rope.get('rope_theta', cfg.get('rope_theta', 10000.0))),
              max_seq_len=cfg.get('max_position_embeddings', 2048),
              qkv_bias=family == 'qwen2',
              tie_embeddings=bool(cfg.get('tie_word_embeddings', False)),
              rope_scaling=None)
    if rope_type == 'llama3':
        kw['rope_scaling'] = dict(
            rope_type='llama3', factor=float(rope['factor']),
            low_freq_factor=float(rope.get('low_freq_factor', 1.0)),
            high_freq_factor=float(rope.get('high_freq_factor', 4.0)),
            original_max_position_embeddings=int(rope.get('original_max_position_embeddings',
                                                          8192)))
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
# Loading into a model
def checkpoint_vocab_size(path: str) -> int:
    """Rows of ``tok_embeddings`` in a Meta or HF folder (read from mmap'd shapes only)."""
    if checkpoint_format(path) == 'meta':
        sd = _mmap_load(meta_shards(path)[0])
        return sd['tok_embeddings.weight'].shape[0]
    with open(os.path.join(path, 'config.json')) as f:
        return json.load(f)['vocab_size']


def check_tokenizer_vocab(tokenizer, vocab_size: int, what: str) -> None:
    """Raise when a tokenizer's vocabulary is not the one of ``vocab_size`` embedding rows.

    A sentencepiece vocabulary must match exactly. An HF ``tokenizer.json`` (whose
    ``embedding_may_be_padded``) may have fewer ids than rows, as Qwen pads its embedding for
    speed (151,665 ids, 152,064 rows): accepted when every id fits and the extra rows are
    padding (at most 128 + 1% of the vocabulary), not another model's vocabulary.

    Args:
        tokenizer: A ``tokenizer.model`` / ``tokenizer.json`` path or a tokenizer object.
        vocab_size: Rows of the LLM's embedding table.
        what: Names the weights in the message (``'checkpoint PATH'``, ``'model.llm'``).
    """
    if isinstance(tokenizer, str):
        from .tokenizer import build_tokenizer
        tokenizer = build_tokenizer(tokenizer)
    n = tokenizer.vocab_size
    padded = getattr(tokenizer, 'embedding_may_be_padded', False)
    if padded and n <= vocab_size <= n + 128 + n // 100:
        return
    if n != vocab_size:
        name = getattr(tokenizer, 'model_path', type(tokenizer).__name__)
        why = (f' (ids up to {n - 1} do not fit the embedding)' if n > vocab_size else
               f' (more rows than padding of {n} ids explains)' if padded else '')
        raise ValueError(f'tokenizer {name} has {n} pieces but {what} has '
                         f'vocab_size {vocab_size}{why}: use the tokenizer that ships with '
                         'these weights')


def load_llama_weights(model: nn.Module, path: str, dtype: Optional[torch.dtype] = None) -> None:
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
    own = model.base_state_dict()
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


def meta_params(args: LLaMAArgs) -> dict:
    """A ``params.json`` dict for ``args`` (Meta's field names)."""
    return dict(dim=args.dim, n_layers=args.n_layers, n_heads=args.n_heads,
                n_kv_heads=args.n_kv_heads, vocab_size=args.vocab_size,
                multiple_of=args.multiple_of, ffn_dim_multiplier=args.ffn_dim_multiplier,
                norm_eps=args.norm_eps, rope_theta=args.rope_theta)

"""Reading LLaMA base weights: Meta folders (``params.json`` + ``consolidated.NN.pth``) and HF
folders (``config.json`` + ``*.safetensors`` / ``pytorch_model*.bin``, sharded with an index).

Both readers return a state dict in mma's (= Meta's) key names. Loading is frugal: shards are
memory-mapped, every tensor is merged and cast once to the target dtype, and the result is
``assign``-ed into the model, so a model built on the meta device never holds a second copy.
"""
import json
import os
from typing import Optional

import torch
from torch import Tensor, nn

from .args import LLaMAArgs
from .families import family_for
from .family import llm_config
from .families.llama import read_meta_params
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

    A ``config.json`` is read by its family's reader (:mod:`mma.llms.families`, by
    ``model_type``); a ``params.json`` as Meta's code reads it
    (:func:`mma.llms.families.llama.read_meta_params`), with ``vocab_size`` (-1 there) from the
    embedding matrix of the weights (a memory-mapped shape, no tensor read). The ``_source`` key
    names the file, for error messages.
    """
    fmt = checkpoint_format(path)
    if fmt == 'meta':
        file = os.path.join(path, 'params.json')
        kw = read_meta_params(_read_json(file))
        if kw.get('vocab_size') is None or kw['vocab_size'] < 0:
            kw['vocab_size'] = checkpoint_vocab_size(path)
    else:
        file = os.path.join(path, 'config.json')
        cfg = llm_config(_read_json(file))  # a LLaVA folder: its language model's config
        kw = family_for(cfg, file).read_hf_config(cfg, file)
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


def _ffn_args(dim: int, hidden: int) -> dict:
    """``multiple_of`` / ``ffn_dim_multiplier`` that give FFN width ``hidden`` by Meta's rule
    (to write an explicit width into a ``params.json``)."""
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
        return llm_config(json.load(f))['vocab_size']


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
    own = model.base_state_dict()
    ref = next(iter(own.values()))
    dtype = dtype or model.dtype
    device = torch.device('cpu') if ref.is_meta else ref.device
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
                           f'architecture? model has {model.num_layers} layers)')
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
    """A ``params.json`` dict for ``args`` (Meta's field names; an explicit FFN width written as
    the ``multiple_of`` / ``ffn_dim_multiplier`` that give it)."""
    ffn = dict(multiple_of=args.multiple_of, ffn_dim_multiplier=args.ffn_dim_multiplier)
    if args.intermediate_size is not None:
        ffn = _ffn_args(args.dim, args.intermediate_size)
    return dict(dim=args.dim, n_layers=args.n_layers, n_heads=args.n_heads,
                n_kv_heads=args.n_kv_heads, vocab_size=args.vocab_size, **ffn,
                norm_eps=args.norm_eps, rope_theta=args.rope_theta)

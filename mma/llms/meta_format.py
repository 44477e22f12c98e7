"""Meta's LLaMA layout: ``params.json`` + ``consolidated.NN.pth`` shards split along the
model-parallel dims (Meta's llama/model.py: ``ColumnParallelLinear`` / ``RowParallelLinear`` /
``ParallelEmbedding``). Reading is frugal: shards are memory-mapped and every tensor
is merged and cast once."""
import ctypes
import glob
import json
import os
import re
import sys
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor

from mma.fileio import torch_load

Cast = Callable[[Tensor], Tensor]

# Meta's model-parallel layout (llama/model.py: column-parallel layers split dim 0, row-parallel
# ones and the embedding dim 1): the dim each shard splits; None = replicated.
_META_SHARD_DIM = {
    'tok_embeddings.weight': 1, 'output.weight': 0, 'norm.weight': None,
    'attention.wq.weight': 0, 'attention.wk.weight': 0, 'attention.wv.weight': 0,
    'attention.wq.bias': 0, 'attention.wk.bias': 0, 'attention.wv.bias': 0,  # qkv_bias models
    'attention.wo.weight': 1, 'feed_forward.w1.weight': 0, 'feed_forward.w3.weight': 0,
    'feed_forward.w2.weight': 1, 'attention_norm.weight': None, 'ffn_norm.weight': None,
    'rope.freqs': None,
}
_META_IGNORED = ('rope.freqs', )


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

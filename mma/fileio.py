"""Reading mma's input files so that a bad file names itself.

``torch.load``, safetensors, sentencepiece and ``json`` fail on a truncated or corrupt file with
messages that name no file (``PytorchStreamReader failed reading zip archive``). Every reader in
mma goes through these helpers, which re-raise such a failure as a
:class:`~mma.errors.CorruptFileError` naming the file, the kind of file it should be and the cause.
"""
import codecs
import json
import os
import pickle
from contextlib import contextmanager
from typing import Any, Dict, Iterator

from mma.errors import CorruptFileError, MMAUserError

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE,
               codecs.BOM_UTF32_BE)


def _is_weights_only_refusal(err: BaseException) -> bool:
    """``torch.load(weights_only=True)`` refusing a pickled object: a policy, not corruption
    (callers decide whether to unpickle fully)."""
    return isinstance(err, pickle.UnpicklingError) and 'Weights only load failed' in str(err)


@contextmanager
def reading(path: str, what: str) -> Iterator[None]:
    """Re-raise any failure to read ``path`` inside the block as a ``CorruptFileError``.

    Args:
        path: The file being read.
        what: The kind of file it should be, e.g. ``'a LLaMA weights shard'``.
    """
    try:
        yield
    except (MMAUserError, FileNotFoundError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001  (any reader failure means: this file is bad)
        if _is_weights_only_refusal(err):
            raise
        cause = str(err).strip().splitlines()[0] if str(err).strip() else 'no detail'
        size = os.path.getsize(path) if os.path.isfile(path) else None
        raise CorruptFileError(
            f'cannot read {path} as {what} ({type(err).__name__}: {cause[:300]}; file size '
            f'{size} bytes): the file is truncated, corrupt or not {what}. Copy or download it '
            'again, or point the config at the right file') from err


def torch_load(path: str, what: str, **kwargs) -> Any:
    """``torch.load(path, map_location='cpu', **kwargs)``, naming ``path`` when it fails."""
    import torch
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    kwargs.setdefault('map_location', 'cpu')
    with reading(path, what):
        return torch.load(path, **kwargs)


def load_safetensors(path: str, what: str) -> Dict[str, Any]:
    """``safetensors.torch.load_file(path)``, naming ``path`` when it fails."""
    from safetensors.torch import load_file
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    with reading(path, what):
        return load_file(path)


@contextmanager
def open_safetensors(path: str, what: str) -> Iterator[Any]:
    """``safetensors.safe_open(path, framework='pt')``; failures (the header, or a tensor read
    inside the block) name ``path``."""
    from safetensors import safe_open
    with reading(path, what), safe_open(path, framework='pt') as f:
        yield f


def read_json(path: str, what: str = 'a JSON file') -> Any:
    """Read a UTF-8 JSON file (a UTF-8 BOM is accepted), whatever the locale.

    Raises:
        CorruptFileError: the file is UTF-16/32 or not UTF-8 (named, with what to do), or not
            valid JSON (with the line and column).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    with open(path, 'rb') as f:
        raw = f.read()
    if raw.startswith(_UTF16_BOMS):
        raise CorruptFileError(f'{path} ({what}) is UTF-16/UTF-32 encoded; mma reads JSON as '
                               'UTF-8: convert it, e.g. iconv -f UTF-16 -t UTF-8')
    try:
        text = raw.decode('utf-8-sig')
    except UnicodeDecodeError as err:
        raise CorruptFileError(
            f'{path} ({what}) is not UTF-8 (byte {raw[err.start]:#04x} at offset {err.start} '
            'cannot be decoded); mma reads JSON as UTF-8: convert it, e.g. iconv -f LATIN1 -t '
            'UTF-8') from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise CorruptFileError(f'{path} ({what}) is not valid JSON: {err}') from None

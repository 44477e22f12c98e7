"""Safe loading of checkpoint files: ``torch.load(weights_only=True)`` for every file mma writes.

mmengine checkpoints pickle the message hub's ``HistoryBuffer`` objects (numpy arrays inside),
which ``torch.load(weights_only=True)`` refuses. mma's checkpoint hooks store them as plain data
(:func:`plain_message_hub`: tensors and numbers) and :func:`load_checkpoint_file` turns them back
(:func:`restore_message_hub`), so every file mma writes loads without unpickling arbitrary
objects. Full unpickling (which can run code hidden in the file) happens only where the caller
passes the user's permission, ``allow_unsafe``: the config's ``allow_unsafe_load`` (True, or the
paths of the files to trust), which ``tools/train.py``, ``tools/test.py`` and
``tools/merge_adapters.py`` hand on. Nothing here is process-wide: each call says what it allows.
"""
import argparse
import os.path as osp
import pickle
import warnings
from typing import Iterable, Optional, Union

import numpy as np
import torch

from mma.errors import CorruptFileError
from mma.fileio import torch_load

#: What ``allow_unsafe`` takes: True (any file), False/None (none), a path or a list of paths.
AllowUnsafe = Optional[Union[bool, str, Iterable[str]]]

CHECKPOINT_FILE = 'an mmengine training checkpoint'
#: Marks a ``HistoryBuffer`` stored as plain data in a checkpoint's message hub.
_PLAIN_BUFFER = '__mma_history_buffer__'


def unsafe_load_allowed(allow_unsafe: AllowUnsafe, filename: str) -> bool:
    """Whether ``allow_unsafe`` (True, False/None, a path or paths) covers ``filename``."""
    if isinstance(allow_unsafe, bool) or allow_unsafe is None:
        return bool(allow_unsafe)
    paths = [allow_unsafe] if isinstance(allow_unsafe, str) else allow_unsafe
    return osp.realpath(filename) in {osp.realpath(osp.expanduser(p)) for p in paths}


def load_checkpoint_file(filename: str, map_location=None, what: str = CHECKPOINT_FILE,
                         allow_unsafe: AllowUnsafe = False):
    """``torch.load`` with ``weights_only=True`` (tensors, numbers, strings, containers and
    ``argparse.Namespace``, which the original LaVIN code saves); mmengine message hubs come back
    as mmengine objects.

    Args:
        filename: The file.
        map_location: As for ``torch.load``.
        what: Names the file's kind in error messages.
        allow_unsafe: The user's permission to unpickle fully a file that holds other objects:
            True (any file), or the paths of trusted files (:func:`unsafe_load_allowed`).

    Raises:
        pickle.UnpicklingError: the file holds other objects and is not allowed; the message names
            the file, what it holds and how to allow it.
    """
    filename = osp.expanduser(filename)  # a missing or corrupt file: torch_load names it
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch_load(filename, what, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        if not unsafe_load_allowed(allow_unsafe, filename):
            try:
                found = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
            except Exception as err:  # noqa: BLE001  (not even a pickle: a corrupt file)
                raise CorruptFileError(
                    f'cannot read {filename} as {what} ({type(err).__name__}: {err}): the file '
                    'is truncated, corrupt or not such a file') from None
            raise pickle.UnpicklingError(
                f'{filename}: holds Python objects other than tensors and plain data '
                f'({", ".join(found[:6]) or "unknown"}), so mma does not load it: unpickling '
                'can run code hidden in the file. If you trust it, set allow_unsafe_load=True '
                "(--cfg-options allow_unsafe_load=True) or allow_unsafe_load=['path'] in the "
                'config, or pass allow_unsafe=True in Python.') from None
        warnings.warn(f'{filename}: not loadable with weights_only=True; unpickling it fully, '
                      'as allowed (allow_unsafe_load)')
        obj = torch_load(filename, what, map_location=map_location, weights_only=False)
    return restore_message_hub(obj)


def _plain(value):
    if isinstance(value, np.ndarray) and value.dtype != object:
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return type(value)((k, _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def plain_message_hub(checkpoint: dict) -> None:
    """Store ``checkpoint['message_hub']`` as plain data, in place: each ``HistoryBuffer`` as a
    dict of its history tensors, numpy values as tensors or numbers."""
    from mmengine.logging import HistoryBuffer
    hub = checkpoint.get('message_hub')
    if not isinstance(hub, dict):
        return
    scalars = hub.get('log_scalars', {})
    for key, buf in scalars.items():
        if isinstance(buf, HistoryBuffer):
            scalars[key] = {_PLAIN_BUFFER: True, 'max_length': buf.max_length,
                            'log_history': torch.from_numpy(buf._log_history.copy()),
                            'count_history': torch.from_numpy(buf._count_history.copy())}
    hub['runtime_info'] = _plain(hub.get('runtime_info', {}))


def restore_message_hub(checkpoint):
    """Undo :func:`plain_message_hub` on a loaded checkpoint (mmengine resumes from it)."""
    from mmengine.logging import HistoryBuffer
    hub = checkpoint.get('message_hub') if isinstance(checkpoint, dict) else None
    if isinstance(hub, dict):
        scalars = hub.get('log_scalars', {})
        for key, buf in scalars.items():
            if isinstance(buf, dict) and buf.get(_PLAIN_BUFFER):
                scalars[key] = HistoryBuffer(buf['log_history'].numpy(),
                                             buf['count_history'].numpy(), buf['max_length'])
    return checkpoint

"""The mmengine 0.10.x fixes mma needs on torch >= 2.6 and on CPU, in one place.

1. Safe loading: mmengine checkpoints pickle the message hub's ``HistoryBuffer`` objects (numpy
   arrays inside), which ``torch.load(weights_only=True)`` refuses. mma's checkpoint hook stores
   them as plain data (:func:`plain_message_hub`, tensors and numbers) and the local checkpoint
   loader mma registers (:func:`register_safe_checkpoint_loader`, covers ``Runner`` and
   ``FlexibleRunner``) loads with ``weights_only=True`` and turns them back
   (:func:`restore_message_hub`). Every file mma writes loads this way; full unpickling (which can
   run code hidden in the file) only for what the user allows: ``allow_unsafe_load=True`` in the
   config (``tools/train.py`` and ``tools/test.py`` read it) or :func:`allow_unsafe_load`.
2. CPU distributed launch: mmengine's ``init_dist`` calls ``torch.cuda.set_device``.
   :func:`init_distributed` initialises the process group itself (gloo on CPU, nccl on CUDA)
   before the Runner is built; the Runner and the strategies skip their own init when a group
   exists. On CPU, DDP must be built with ``device_ids=None`` (:func:`cpu_ddp_wrapper_cfg`).
3. FSDP resume: mmengine calls ``FSDP.optim_state_dict_to_load`` with the old positional order
   (``TypeError: unhashable type: 'dict'``); :class:`CompatFSDPStrategy` calls it by keyword.
   FSDP's full-state-dict hooks also expect every parameter under its module path, which
   :class:`~mma.adapters.AdaptedModule` (keeping open_clip's keys) renames; the strategy saves and
   loads the trainable tensors directly (all that mma checkpoints hold) instead.
"""
import argparse
import os
import os.path as osp
import pickle
import re
import warnings
from datetime import timedelta
from typing import Optional, Union

import numpy as np
import torch
import torch.distributed as dist
from mmengine._strategy import FSDPStrategy

from mma.errors import CorruptFileError
from mma.fileio import torch_load
from mma.registry import STRATEGIES

_FSDP_PARTS = re.compile(r'(_fsdp_wrapped_module|_checkpoint_wrapped_module|_orig_mod)\.')


_CHECKPOINT_FILE = 'an mmengine training checkpoint'
#: Files the user allowed to be unpickled fully (real paths); ``True``: any file.
_UNSAFE_ALLOWED: Union[bool, set] = set()
#: Marks a ``HistoryBuffer`` stored as plain data in a checkpoint's message hub.
_PLAIN_BUFFER = '__mma_history_buffer__'


def allow_unsafe_load(files: Union[bool, str, list] = True) -> None:
    """Allow full unpickling (``weights_only=False``) of ``files`` (a path or a list of paths),
    or of every checkpoint when ``files`` is True. Only for files you trust: unpickling can run
    code. ``False`` withdraws every permission."""
    global _UNSAFE_ALLOWED
    if isinstance(files, bool):
        _UNSAFE_ALLOWED = True if files else set()
        return
    if _UNSAFE_ALLOWED is not True:
        _UNSAFE_ALLOWED |= {osp.realpath(f) for f in ([files] if isinstance(files, str)
                                                      else files)}


def allow_unsafe_load_from_cfg(cfg) -> None:
    """Apply the config's ``allow_unsafe_load`` (True, or the paths of files to trust)."""
    if cfg.get('allow_unsafe_load'):
        allow_unsafe_load(cfg.allow_unsafe_load)


def load_checkpoint_file(filename: str, map_location=None, what: str = _CHECKPOINT_FILE):
    """``torch.load`` with ``weights_only=True`` (tensors, numbers, strings, containers and
    ``argparse.Namespace``, which the original LaVIN code saves); mmengine message hubs come back
    as mmengine objects. A file that holds other objects is unpickled fully only when the user
    allowed it (:func:`allow_unsafe_load`); otherwise an ``UnpicklingError`` names the file, what
    it holds and how to allow it."""
    filename = osp.expanduser(filename)  # a missing or corrupt file: torch_load names it
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch_load(filename, what, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        if _UNSAFE_ALLOWED is not True and osp.realpath(filename) not in _UNSAFE_ALLOWED:
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
                '(--cfg-options allow_unsafe_load=True) or call '
                'mma.engine.compat.allow_unsafe_load(path).') from None
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


def register_safe_checkpoint_loader() -> None:
    """Fix 1: mmengine loads local checkpoints (resume, ``load_from``) with
    :func:`load_checkpoint_file`."""
    from mmengine.runner import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', force=True)(load_checkpoint_file)


def init_distributed(launcher: str, backend: Optional[str] = None,
                     timeout_s: Optional[float] = None) -> None:
    """Fix 2: initialise ``torch.distributed`` for ``launcher`` ('pytorch' or 'slurm').

    The backend defaults to nccl with CUDA and gloo without. ``pytorch`` reads torchrun's
    environment; ``slurm`` maps ``SLURM_PROCID`` / ``SLURM_NTASKS`` / ``SLURM_LOCALID`` (the master
    address and port must be in ``MASTER_ADDR`` / ``MASTER_PORT``).
    """
    if launcher == 'none' or dist.is_initialized():
        return
    if launcher == 'slurm':
        os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
        os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
        os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
        os.environ.setdefault('MASTER_PORT', '29500')
    elif launcher != 'pytorch':
        raise ValueError(f"launcher {launcher!r}: expected 'none', 'pytorch' or 'slurm'")
    cuda = torch.cuda.is_available()
    backend = backend or ('nccl' if cuda else 'gloo')
    if cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count())
    kwargs = {} if timeout_s is None else dict(timeout=timedelta(seconds=timeout_s))
    dist.init_process_group(backend=backend, **kwargs)


def cpu_ddp_wrapper_cfg() -> dict:
    """``model_wrapper_cfg`` for DDP on CPU (fix 2).

    ``find_unused_parameters``: a rank whose batch has no image sample does not use the ViT
    adapters and the projector in that step.
    """
    return dict(type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
                find_unused_parameters=True)


def setup_distributed(cfg, launcher: str) -> None:
    """Fix 2 for a tool (train, test): start the process group for ``launcher`` and make ``cfg``
    wrap the model for it. Without CUDA: gloo, DDP with ``device_ids=None``
    (:func:`cpu_ddp_wrapper_cfg`) for the ``Runner``, FSDP on the CPU device for an FSDP
    strategy. Nothing happens for ``launcher='none'``."""
    cfg.launcher = launcher
    if launcher == 'none':
        return
    backend = None
    if not torch.cuda.is_available():
        backend = 'gloo'
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = backend
        if cfg.get('runner_type', 'Runner') in ('Runner', 'MMARunner'):
            cfg.model_wrapper_cfg = cpu_ddp_wrapper_cfg()
        elif 'FSDP' in cfg.get('strategy', {}).get('type', ''):
            cfg.strategy.setdefault('model_wrapper', {})['device_id'] = torch.device('cpu')
    else:
        backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend')
    init_distributed(launcher, backend)


@STRATEGIES.register_module()
class CompatFSDPStrategy(FSDPStrategy):
    """mmengine's ``FSDPStrategy`` with fix 3: keyword ``optim_state_dict_to_load``, and the model
    state dict made of the trainable tensors, gathered with ``summon_full_params`` (needs
    ``use_orig_params=True``, which FSDP requires anyway when a unit mixes frozen and trainable
    parameters)."""

    def _trainable_params(self) -> dict:
        from mma.engine.hooks import trainable_keys
        keep = trainable_keys(self.model)
        return {k: p for k, p in ((_FSDP_PARTS.sub('', n), p)
                                  for n, p in self.model.named_parameters()) if k in keep}

    def model_state_dict(self) -> dict:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        with FSDP.summon_full_params(self.model, writeback=False):
            return {k: p.detach().cpu().clone() for k, p in self._trainable_params().items()}

    def load_model_state_dict(self, state_dict: dict, *, strict: bool = False,
                              revise_keys: list = [(r'^module.', '')]) -> None:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        with FSDP.summon_full_params(self.model, writeback=True), torch.no_grad():
            params = self._trainable_params()
            unknown = sorted(set(state_dict) - set(params))
            if unknown:
                raise KeyError(f'checkpoint keys not among the trainable parameters: {unknown[:5]}')
            for k, v in state_dict.items():
                params[k].copy_(v)

    def optim_state_dict(self) -> dict:
        """Every rank's own (sharded) optimiser state, gathered into one object.

        ``FSDP.optim_state_dict`` (the full, unsharded form mmengine saves) came back corrupted on
        CPU/gloo with torch 2.14 (``exp_avg`` equal to ``exp_avg_sq``); the trainable set is small,
        so mma keeps each rank's shard instead. Resuming needs the same number of ranks.
        """
        local = self.optim_wrapper.state_dict()
        shards = [None] * dist.get_world_size()
        dist.all_gather_object(shards, local)
        return {'fsdp_shards_by_rank': shards}

    def load_optim_state_dict(self, state_dict: dict) -> None:
        if 'fsdp_shards_by_rank' in state_dict:
            shards = state_dict['fsdp_shards_by_rank']
            if len(shards) != dist.get_world_size():
                raise RuntimeError(f'the checkpoint holds the optimiser state of {len(shards)} '
                                   f'FSDP ranks; resume with that many (not '
                                   f'{dist.get_world_size()})')
            self.optim_wrapper.load_state_dict(shards[dist.get_rank()])
            return
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        optim_state_dict = FSDP.optim_state_dict_to_load(
            model=self.model, optim=self.optim_wrapper.optimizer, optim_state_dict=state_dict)
        self.optim_wrapper.load_state_dict(optim_state_dict)


def apply_mmengine_fixes() -> None:
    """Apply the process-wide fix (1). Fixes 2 and 3 are used explicitly (launch, config)."""
    register_safe_checkpoint_loader()

"""The mmengine 0.10.x fixes mma needs on torch >= 2.6 and on CPU, in one place.

1. Resume: ``torch.load`` defaults to ``weights_only=True`` and mmengine checkpoints pickle
   ``HistoryBuffer`` and numpy objects. :func:`register_trusted_checkpoint_loader` makes local
   paths load with ``weights_only=False`` (covers ``Runner`` and ``FlexibleRunner``). Only load
   checkpoints you trust this way.
2. CPU distributed launch: mmengine's ``init_dist`` calls ``torch.cuda.set_device``.
   :func:`init_distributed` initialises the process group itself (gloo on CPU, nccl on CUDA)
   before the Runner is built; the Runner and the strategies skip their own init when a group
   exists. On CPU, DDP must be built with ``device_ids=None`` (:func:`cpu_ddp_wrapper_cfg`).
3. FSDP resume: mmengine calls ``FSDP.optim_state_dict_to_load`` with the old positional order
   (``TypeError: unhashable type: 'dict'``); :class:`CompatFSDPStrategy` calls it by keyword.
"""
import os
import os.path as osp
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as dist
from mmengine._strategy import FSDPStrategy

from mma.registry import STRATEGIES


def load_trusted_local(filename: str, map_location=None):
    """mmengine's local checkpoint loader with ``weights_only=False`` (trusted files only)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


def register_trusted_checkpoint_loader() -> None:
    """Fix 1: make mmengine load local checkpoints (resume) with ``weights_only=False``."""
    from mmengine.runner import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', force=True)(load_trusted_local)


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
    """``model_wrapper_cfg`` for DDP on CPU (fix 2)."""
    return dict(type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False)


@STRATEGIES.register_module()
class CompatFSDPStrategy(FSDPStrategy):
    """mmengine's ``FSDPStrategy`` with fix 3 (keyword ``optim_state_dict_to_load``)."""

    def load_optim_state_dict(self, state_dict: dict) -> None:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        optim_state_dict = FSDP.optim_state_dict_to_load(
            model=self.model, optim=self.optim_wrapper.optimizer, optim_state_dict=state_dict)
        self.optim_wrapper.load_state_dict(optim_state_dict)


def apply_mmengine_fixes() -> None:
    """Apply the process-wide fix (1). Fixes 2 and 3 are used explicitly (launch, config)."""
    register_trusted_checkpoint_loader()

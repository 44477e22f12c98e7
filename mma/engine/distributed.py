"""Distributed launch on CPU and CUDA (mmengine fix 2, :mod:`mma.engine.mmengine_fixes`).

mmengine's ``init_dist`` calls ``torch.cuda.set_device``. :func:`init_distributed` initialises the
process group itself (gloo on CPU, nccl on CUDA) before the Runner is built; the Runner and the
strategies skip their own init when a group exists. On CPU, DDP must be built with
``device_ids=None`` (:func:`cpu_ddp_wrapper_cfg`).
"""
import os
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as dist


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

    ``find_unused_parameters`` is left to :class:`~mma.engine.MMARunner`, which takes it from the
    model (``may_leave_parameters_unused``).
    """
    return dict(type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False)


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

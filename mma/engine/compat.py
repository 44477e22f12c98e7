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
   FSDP's full-state-dict hooks also expect every parameter under its module path, which
   :class:`~mma.adapters.AdaptedModule` (keeping open_clip's keys) renames; the strategy saves and
   loads the trainable tensors directly (all that mma checkpoints hold) instead.
"""
import os
import os.path as osp
import re
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as dist
from mmengine._strategy import FSDPStrategy

from mma.fileio import torch_load
from mma.registry import STRATEGIES

_FSDP_PARTS = re.compile(r'(_fsdp_wrapped_module|_checkpoint_wrapped_module|_orig_mod)\.')


def load_trusted_local(filename: str, map_location=None):
    """mmengine's local checkpoint loader with ``weights_only=False`` (trusted files only)."""
    return torch_load(osp.expanduser(filename), 'an mmengine training checkpoint',
                      map_location=map_location, weights_only=False)


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
    register_trusted_checkpoint_loader()

"""FSDP resume (mmengine fix 3, :mod:`mma.engine.mmengine_fixes`).

mmengine calls ``FSDP.optim_state_dict_to_load`` with the old positional order (``TypeError:
unhashable type: 'dict'``); :class:`CompatFSDPStrategy` calls it by keyword. FSDP's full-state-dict
hooks also expect every parameter under its module path, which :class:`~mma.slots.AdaptedModule`
(keeping open_clip's keys) renames; the strategy saves and loads the trainable tensors directly
(all that mma checkpoints hold) instead.
"""
import torch
import torch.distributed as dist
from mmengine._strategy import FSDPStrategy

from mma.engine.hooks import WRAPPER_PARTS, trainable_keys
from mma.registry import STRATEGIES


@STRATEGIES.register_module()
class CompatFSDPStrategy(FSDPStrategy):
    """mmengine's ``FSDPStrategy`` with fix 3: keyword ``optim_state_dict_to_load``, and the model
    state dict made of the trainable tensors, gathered with ``summon_full_params`` (needs
    ``use_orig_params=True``, which FSDP requires anyway when a unit mixes frozen and trainable
    parameters)."""

    def _trainable_params(self) -> dict:
        keep = trainable_keys(self.model)
        return {k: p for k, p in ((WRAPPER_PARTS.sub('', n), p)
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

"""Hooks: trainable-only checkpoints, per-iteration seeding, the vocabulary check, the global-batch
loss in the log."""
import re
from typing import Set

import torch
import torch.distributed as dist
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mma.models.adapter_checkpoint import check_adapter_keys
from mma.registry import HOOKS

#: Name parts that model wrappers (FSDP, activation checkpointing, torch.compile) insert.
WRAPPER_PARTS = re.compile(r'(_fsdp_wrapped_module|_checkpoint_wrapped_module|_orig_mod)\.')


def _strip_model_wrapper(model):
    """The model inside a DDP/FSDP model wrapper, or ``model`` itself (unlike
    :func:`mma.slots.unwrap`, which takes a backbone module out of an ``AdaptedModule``)."""
    return model.module if is_model_wrapper(model) else model


def _is_fsdp(model) -> bool:
    return 'FullyShardedDataParallel' in type(model).__name__


def trainable_keys(model) -> Set[str]:
    """Names of the model's trainable (saved) tensors, wrapper prefixes removed."""
    return {WRAPPER_PARTS.sub('', n) for n in _strip_model_wrapper(model).trainable_names()}


@HOOKS.register_module()
class TrainableCheckpointHook(Hook):
    """Save only the trainable tensors; load them back over the model's own frozen weights.

    Saving keeps the model's declared trainable tensors (``model.trainable_names()``). Loading
    (resume or ``load_from``) requires the checkpoint to hold exactly the model's trainable tensors
    (an unknown, frozen or missing key is an error); the frozen weights stay those the model was
    built and initialised with (``init_weights`` reads the base weights from the user's files).
    """

    priority = 'VERY_HIGH'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        sd = checkpoint['state_dict']
        keep = trainable_keys(runner.model)
        checkpoint['state_dict'] = type(sd)((k, v) for k, v in sd.items()
                                            if re.sub(r'^module\.', '', k) in keep)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        sd = {re.sub(r'^module\.', '', k): v for k, v in checkpoint['state_dict'].items()}
        check_adapter_keys(sd, trainable_keys(runner.model), 'checkpoint')
        if not _is_fsdp(runner.model):
            # mmengine's loader warns about every missing key; give it the frozen tensors the
            # model already holds (copying a tensor onto itself is a no-op).
            full = _strip_model_wrapper(runner.model).state_dict()
            full.update(sd)
            sd = full
        checkpoint['state_dict'] = sd


@HOOKS.register_module()
class PerIterationSeedHook(Hook):
    """Seed torch's RNG before every iteration from (seed, rank, iteration).

    Dropout then differs between ranks, and a resumed run draws exactly the masks the straight
    run drew (mmengine does not save RNG states), so resuming is bitwise reproducible.
    """

    priority = 'VERY_HIGH'

    def __init__(self, seed: int = None):
        self.seed = seed

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        base = self.seed if self.seed is not None else (runner.seed or 0)
        torch.manual_seed((base * 1_000_003 + get_rank() * 7_919 + runner.iter) % (2**63))


@HOOKS.register_module()
class VocabCheckHook(Hook):
    """Before training or testing, check that the tokenizer of every data pipeline has the LLM's
    vocabulary (a ``ValueError`` naming both otherwise): token ids of another vocabulary index
    other rows of the embedding table and train or evaluate silently wrong."""

    priority = 'VERY_HIGH'

    def _check(self, runner, loop, name: str) -> None:
        from mma.datasets.validate import check_dataset_vocab
        llm = getattr(_strip_model_wrapper(runner.model), 'llm', None)
        dataloader = getattr(loop, 'dataloader', None)
        if llm is not None and dataloader is not None:
            check_dataset_vocab(dataloader.dataset, llm.vocab_size, name)

    def before_train(self, runner) -> None:
        self._check(runner, runner.train_loop, 'train_dataloader.dataset')

    def before_test(self, runner) -> None:
        self._check(runner, runner.test_loop, 'test_dataloader.dataset')


@HOOKS.register_module()
class GlobalLossLogHook(Hook):
    """Log the loss of the global batch, not rank 0's own: average the loss values of a training
    iteration over the ranks before mmengine's ``RuntimeInfoHook`` records them.

    Under the token-mean loops (:mod:`mma.engine.loops`) rank r's loss is ``CE_r * W / N`` (N
    answer tokens of the global batch, W ranks), so the average is the global ``sum CE / N``: the
    figure one process logs for the same step. Runs first (priority ``HIGHEST``).
    """

    priority = 'HIGHEST'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not outputs or not dist.is_available() or not dist.is_initialized():
            return
        world = dist.get_world_size()
        names = [k for k, v in outputs.items() if 'loss' in k and torch.is_tensor(v)]
        if world == 1 or not names:
            return
        values = torch.stack([outputs[k].detach().float().reshape(()) for k in names])
        dist.all_reduce(values)
        for k, v in zip(names, values / world):
            outputs[k] = v

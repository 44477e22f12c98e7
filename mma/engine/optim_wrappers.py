"""Optimiser wrappers that skip steps with non-finite gradients and count them.

A NaN/inf loss on any rank makes the (averaged) gradients non-finite on every rank; the step is
skipped everywhere (the decision is all-reduced, so sharded FSDP gradients agree too), the
gradients are cleared, and ``train/nonfinite_steps`` in the log counts the skipped steps. With a
loss scaler (AMP) the scaler already skips such steps; the wrapper counts them from its scale drop.
When ``max_consecutive_nonfinite`` steps in a row are skipped, training stops with
:class:`NonFiniteLossError` instead of running on without learning.
"""
import logging
from contextlib import contextmanager
from typing import List, Optional

import torch
import torch.distributed as dist
from mmengine.logging import MessageHub, MMLogger
from mmengine.optim import AmpOptimWrapper, DefaultOptimWrapperConstructor, OptimWrapper
from torch import nn

from mma.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS


def grads_finite(params) -> bool:
    """Whether every gradient of ``params`` is finite, agreed over all ranks."""
    flags = [torch.isfinite(p.grad).all() for p in params if p.grad is not None]
    ok = torch.stack(flags).all() if flags else torch.tensor(True)
    if dist.is_available() and dist.is_initialized():
        ok = ok.to(torch.int32)
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok)


class NonFiniteLossError(RuntimeError):
    """Too many optimiser steps in a row had non-finite gradients."""


class _NonFiniteCounter:
    """Counts skipped steps; stops training after ``max_consecutive_nonfinite`` in a row
    (0 or None: never)."""

    def __init__(self, *args, max_consecutive_nonfinite: Optional[int] = 20, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_consecutive_nonfinite = max_consecutive_nonfinite
        self.nonfinite_steps = 0
        self.consecutive_nonfinite = 0

    def _count_skip(self) -> None:
        self.nonfinite_steps += 1
        self.consecutive_nonfinite += 1
        hub = MessageHub.get_current_instance()
        hub.update_scalar('train/nonfinite_steps', self.nonfinite_steps)
        k = self.max_consecutive_nonfinite
        if k and self.consecutive_nonfinite >= k:
            raise NonFiniteLossError(
                f'training stopped at iteration {hub.get_info("iter", "?")}: the last '
                f'{self.consecutive_nonfinite} optimizer steps all had non-finite gradients '
                f'(NaN/inf loss; {self.nonfinite_steps} skipped in total). Check the data and '
                'the learning rate, or raise optim_wrapper.max_consecutive_nonfinite '
                f'(now {k})')

    def _count_step(self) -> None:
        self.consecutive_nonfinite = 0

    def state_dict(self) -> dict:
        state = super().state_dict()
        state['nonfinite_steps'] = self.nonfinite_steps
        state['consecutive_nonfinite'] = self.consecutive_nonfinite
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        self.nonfinite_steps = int(state_dict.pop('nonfinite_steps', 0))
        self.consecutive_nonfinite = int(state_dict.pop('consecutive_nonfinite', 0))
        super().load_state_dict(state_dict)

    def _params(self):
        return [p for g in self.optimizer.param_groups for p in g['params']]


@OPTIM_WRAPPERS.register_module()
class SkipNonFiniteOptimWrapper(_NonFiniteCounter, OptimWrapper):
    """``OptimWrapper`` that skips (and counts) steps whose gradients are not finite.

    Args:
        max_consecutive_nonfinite: Stop training (:class:`NonFiniteLossError`) after this many
            skipped steps in a row (default 20; 0 or None: never).
        *args, **kwargs: As mmengine's ``OptimWrapper``.
    """

    def step(self, **kwargs) -> None:
        if not grads_finite(self._params()):
            self._count_skip()
            return
        self._count_step()
        super().step(**kwargs)


@OPTIM_WRAPPERS.register_module()
class SkipNonFiniteAmpOptimWrapper(_NonFiniteCounter, AmpOptimWrapper):
    """``AmpOptimWrapper`` (bf16 or fp16 with dynamic loss scaling) counting skipped steps;
    ``max_consecutive_nonfinite`` as :class:`SkipNonFiniteOptimWrapper`."""

    def step(self, **kwargs) -> None:
        before = self.loss_scaler.get_scale()
        super().step(**kwargs)
        if self.loss_scaler.get_scale() < before:
            self._count_skip()
        else:
            self._count_step()


@OPTIM_WRAPPERS.register_module()
class SkipNonFiniteCPUAmpOptimWrapper(SkipNonFiniteOptimWrapper):
    """Mixed precision on CPU: bf16 autocast around the forward pass (mmengine's
    ``AmpOptimWrapper`` requires a GPU). bf16 keeps fp32's exponent range, so no loss scaling is
    needed; adapters, optimizer state and the loss stay fp32. Fast on CPUs with bf16 matrix
    instructions (AVX512-BF16, AMX): 2x on the medium benchmark here (docs/performance.md).
    """

    @contextmanager
    def optim_context(self, model: nn.Module):
        with super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16):
            yield


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TrainableOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor (``paramwise_cfg`` and all) over trainable parameters only.

    The default one puts every parameter in the optimiser and, with a ``paramwise_cfg``, warns
    once per frozen tensor (hundreds for LLaMA-7B); frozen tensors are left out here.
    """

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   **kwargs) -> None:
        logger = MMLogger.get_current_instance()
        quiet = _DropFrozenWarnings()
        logger.addFilter(quiet)
        try:
            super().add_params(params, module, prefix, **kwargs)
        finally:
            logger.removeFilter(quiet)
        params[:] = [g for g in params if g['params'][0].requires_grad]


class _DropFrozenWarnings(logging.Filter):

    def filter(self, record: logging.LogRecord) -> bool:
        return 'since its requires_grad=False' not in record.getMessage()

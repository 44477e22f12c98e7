"""Train loops whose optimiser step follows the token mean of the whole global batch.

The gradient of one optimiser step must be the gradient of ``sum of answer-token CE / N`` where N
counts the answer tokens of the *global* batch: every micro-batch of the accumulation window on
every rank (the original LaVIN code takes a token mean per GPU micro-batch instead, which
weights tokens unequally; HF Trainer's ``num_items_in_batch`` is prior art). The loops
prefetch the micro-batches of each accumulation window, count their answer tokens, sum the count
over ranks (``all_reduce``), and give each micro-batch the normaliser

    num_loss_tokens = N / (f * W),

where f is the factor mmengine's ``OptimWrapper.scale_loss`` divides that micro-batch's loss by
(the accumulation count, or the remainder in a last short window) and W the number of ranks whose
gradients DDP/FSDP average. The model returns ``sum CE / num_loss_tokens`` (``LaVIN.loss``), so the
accumulated, averaged gradient is exactly ``grad(sum CE over the global batch) / N`` however the
global batch is split into per-device batch x accumulation x devices.

Windows follow ``OptimWrapper.should_update``. The epoch-based loop restarts the count every epoch
(windows never straddle two epochs: the last window of an epoch may be short and the optimiser
steps at every epoch end, as the reference did); the iteration-based loop counts globally.
"""
from typing import Iterator, List, Tuple

import torch
import torch.distributed as dist
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from mma.registry import LOOPS
from mma.sequence import IGNORE_INDEX



def _counts(ow) -> Tuple[int, int, int, int]:
    """(accumulative, max, remainder, inner) counts of an mmengine OptimWrapper."""
    if not isinstance(ow, OptimWrapper):
        return 1, -1, -1, 0
    return ow._accumulative_counts, ow._max_counts, ow._remainder_counts, ow._inner_count


def window_length(ow) -> int:
    """Micro-batches from the wrapper's current count to its next update (inclusive)."""
    acc, max_c, _, inner = _counts(ow)
    n = acc - inner % acc
    if max_c > 0:
        n = min(n, max_c - inner)
    return max(n, 1)


def loss_factor(ow, inner: int) -> int:
    """What ``OptimWrapper.scale_loss`` divides the loss by at inner count ``inner``."""
    acc, max_c, rem, _ = _counts(ow)
    if acc == 1:
        return 1
    if max_c == -1:
        return acc
    return acc if inner < max_c - rem else rem


def count_loss_tokens(batch: dict) -> int:
    """Answer tokens of a collated batch (positions with a target)."""
    return int((batch['inputs']['labels'] != IGNORE_INDEX).sum())


def token_mean_batches(batches: Iterator[dict], ow, world_size: int) -> Iterator[dict]:
    """Yield ``batches`` with ``inputs['num_loss_tokens']`` set per accumulation window.

    The wrapper's count is read at the start of each window, after the previous window's
    micro-batches have run (the generator is lazy).
    """
    while True:
        n = window_length(ow)
        inner = _counts(ow)[3]
        window: List[dict] = []
        for _ in range(n):
            try:
                window.append(next(batches))
            except StopIteration:
                break
        if not window:
            return
        total = torch.tensor(float(sum(count_loss_tokens(b) for b in window)),
                             dtype=torch.float64)
        if world_size > 1:
            dist.all_reduce(total)
        total = max(float(total), 1.0)
        MessageHub.get_current_instance().update_scalar('train/loss_tokens', total)
        for i, b in enumerate(window):
            b['inputs']['num_loss_tokens'] = total / (loss_factor(ow, inner + i) * world_size)
            yield b


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@LOOPS.register_module()
class TokenMeanEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` with the global token-mean loss (see module doc).

    Resuming in the middle of an epoch skips the batches of that epoch already trained.
    """

    def run_epoch(self) -> None:
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        ow = self.runner.optim_wrapper
        n = len(self.dataloader)
        done = max(self._iter - self._epoch * n, 0)
        if isinstance(ow, OptimWrapper):
            ow.initialize_count_status(self.runner.model, done, n)
        it = iter(self.dataloader)
        for _ in range(done):
            next(it)
        for idx, batch in enumerate(token_mean_batches(it, ow, _world_size()), start=done):
            self.run_iter(idx, batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1


@LOOPS.register_module()
class TokenMeanIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` with the global token-mean loss (see module doc)."""

    def run(self) -> None:
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        for _ in range(self._iter):  # resume: skip the data already trained on
            next(self.dataloader_iterator)
        stream = token_mean_batches(self.dataloader_iterator, self.runner.optim_wrapper,
                                    _world_size())
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            self.run_iter(next(stream))
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0 or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model

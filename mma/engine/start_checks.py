"""Checks before the first training step, so that nothing fails late or trains wrong in silence.

:class:`StartChecksHook` (a default hook of ``configs/_base_/default_runtime.py``):

1. opens every image of the training set (and, before testing, of the test set): a missing or
   corrupt image is a :class:`~mma.datasets.DataValidationError` naming each file and qid now,
   never a crash inside a DataLoader worker in epoch 3 (the policy: bad images are refused before
   training, not skipped);
2. writes the qids of over-long samples (truncated or skipped) to ``WORK_DIR/overlong_samples.txt``;
3. warns when the learning-rate schedule cannot train: a warm-up that covers the whole run, or a
   learning rate that never leaves its floor (mmengine's chained schedulers start the cosine from
   wherever the warm-up stopped: a 1-iteration warm-up stays at ``start_factor * lr``).
"""
import copy
import logging
import os.path as osp
import warnings
from typing import List, Optional, Sequence

import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mma.registry import HOOKS, PARAM_SCHEDULERS

OVERLONG_FILE = 'overlong_samples.txt'
#: ``torch.backends.cpu.get_cpu_capability()`` values whose bf16 matmuls run in vector units.
NATIVE_BF16_CPUS = ('AVX512', 'SVE256')


def cpu_bf16_warning(model, optim_wrapper, capability: Optional[str] = None) -> Optional[str]:
    """Why bf16 will be slow here (None when it will not): ``model`` on the CPU computes in bf16
    (``optim_wrapper`` autocasts to bf16, or frozen weights are stored in bf16) and the CPU
    (``capability``, default ``torch.backends.cpu.get_cpu_capability()``) has no native bf16."""
    from .optim_wrappers import SkipNonFiniteCPUAmpOptimWrapper
    params = list(model.parameters())
    if not params or params[0].device.type != 'cpu':
        return None
    autocast = isinstance(optim_wrapper, SkipNonFiniteCPUAmpOptimWrapper)
    if not autocast and not any(p.dtype == torch.bfloat16 for p in params):
        return None
    capability = capability or torch.backends.cpu.get_cpu_capability()
    if capability in NATIVE_BF16_CPUS:
        return None
    what = ('bf16 autocast (--amp, optim_wrapper.type=SkipNonFiniteCPUAmpOptimWrapper)'
            if autocast else 'bf16 frozen weights (model.frozen_dtype)')
    return (f'{what} on a CPU without native bf16 (torch.backends.cpu.get_cpu_capability() = '
            f'{capability!r}): bf16 matmuls run on a scalar path here, ~0.6 GFLOP/s against ~39 '
            'in fp32, a training step about 30x slower. Train in fp32 on this CPU: drop --amp '
            '(optim_wrapper.type=SkipNonFiniteOptimWrapper) and leave model.frozen_dtype unset.')


def lr_trajectory(schedulers: Sequence[dict], base_lr: float, epoch_length: int,
                  max_iters: int) -> List[float]:
    """The learning rate of every training iteration under mmengine's ``param_scheduler`` configs,
    computed with mmengine's own scheduler classes on a one-parameter optimiser (as the Runner
    builds them: ``convert_to_iter_based`` epochs become ``epoch_length`` iterations; iteration
    schedulers step after every iteration, epoch schedulers after every epoch)."""
    with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": no training here
        warnings.simplefilter('ignore', UserWarning)
        return _simulate(schedulers, base_lr, epoch_length, max_iters)


def _simulate(schedulers: Sequence[dict], base_lr: float, epoch_length: int,
              max_iters: int) -> List[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    built = []
    for cfg in schedulers:
        cfg = copy.deepcopy(dict(cfg))
        cls = PARAM_SCHEDULERS.get(cfg.pop('type'))
        if cfg.pop('convert_to_iter_based', False) and cfg.get('by_epoch', True):
            built.append(cls.build_iter_from_epoch(opt, epoch_length=epoch_length, **cfg))
        else:
            built.append(cls(opt, **cfg))
    lrs = []
    for it in range(max_iters):
        lrs.append(opt.param_groups[0]['lr'])
        for s in built:
            if not s.by_epoch:
                s.step()
        if (it + 1) % epoch_length == 0:
            for s in built:
                if s.by_epoch:
                    s.step()
    return lrs


def schedule_warnings(schedulers: Sequence[dict], base_lr: float, epoch_length: int,
                      max_iters: int, floor_ratio: float = 0.1) -> List[str]:
    """Why the schedule cannot train (empty when it can): a warm-up (``LinearLR``/``ConstantLR``
    starting below 1) that ends at or after the last iteration, or a peak learning rate under
    ``floor_ratio * base_lr`` over the whole run."""
    out = []
    for cfg in schedulers:
        start = cfg.get('start_factor', cfg.get('factor', 1.0))
        if cfg['type'] not in ('LinearLR', 'ConstantLR') or start >= 1:
            continue
        end = cfg.get('end', float('inf'))
        if cfg.get('by_epoch', True):
            end = end * epoch_length
        if end >= max_iters:
            out.append(f"the {cfg['type']} warm-up ends at iteration {end:g}, at or after the "
                       f'last of the run ({max_iters} iterations of {epoch_length} per epoch): '
                       'the learning rate never reaches its configured value')
    lrs = lr_trajectory(schedulers, base_lr, epoch_length, max_iters)
    if lrs and max(lrs) < floor_ratio * base_lr:
        out.append(f'the learning rate never leaves its floor: its peak over the {max_iters} '
                   f'iterations ({epoch_length} per epoch) is {max(lrs):.3g}, under '
                   f"{floor_ratio:g} x the configured {base_lr:g} (mmengine's cosine goes on from "
                   'where the warm-up stopped: a warm-up of one iteration stays at start_factor '
                   'x lr): train longer, use a smaller batch or a shorter warm-up '
                   '(param_scheduler)')
    return out


@HOOKS.register_module()
class StartChecksHook(Hook):
    """The checks of the module docstring, before the first training step.

    Args:
        check_images: Open every image of the training set, shared between the ranks and
            ``workers`` threads each (a 640x480 JPEG takes about 5 ms to decode).
        workers: Threads per rank for the image check.
        floor_ratio: Warn when the peak learning rate is under this fraction of the configured one.
    """

    priority = 'VERY_HIGH'

    def __init__(self, check_images: bool = True, floor_ratio: float = 0.1, workers: int = 8):
        self.check_images = check_images
        self.floor_ratio = floor_ratio
        self.workers = workers

    def before_train(self, runner) -> None:
        from mma.datasets.validate import dataset_parts
        dataset = runner.train_dataloader.dataset
        if self.check_images:
            self._check_images(dataset, 'train_dataloader.dataset')
        if is_main_process():
            self._write_overlong(runner.work_dir, dataset_parts(dataset))
        model = getattr(runner.model, 'module', runner.model)
        msgs = [cpu_bf16_warning(model, runner.optim_wrapper)] + self._schedule_warnings(runner)
        for msg in filter(None, msgs):
            print_log(f'StartChecksHook: {msg}', logger='current', level=logging.WARNING)

    def before_test(self, runner) -> None:
        """The same image policy for evaluation (``tools/test.py``)."""
        if self.check_images:
            self._check_images(runner.test_dataloader.dataset, 'test_dataloader.dataset')

    def _check_images(self, dataset, where: str) -> None:
        """Every rank opens its share of the images; all ranks raise the same complete error."""
        from mma.datasets.validate import dataset_images, image_errors, raise_image_errors
        _, images = dataset_images(dataset)
        rank, world = get_rank(), get_world_size()
        errors = image_errors(images[rank::world], self.workers)
        if world > 1:
            errors = [e for part in all_gather_object(errors) for e in part]
        raise_image_errors(errors, where)

    @staticmethod
    def _write_overlong(work_dir: str, parts: list) -> Optional[str]:
        lines = [f'{kind}\t{type(d).__name__}\t{qid}' for d in parts
                 for kind in ('truncated', 'skipped') for qid in getattr(d, f'{kind}_qids', [])]
        if not lines:
            return None
        path = osp.join(work_dir, OVERLONG_FILE)
        with open(path, 'w', encoding='utf-8') as f:
            f.write('policy\tdataset\tqid\n' + '\n'.join(lines) + '\n')
        print_log(f'{len(lines)} over-long samples (truncated or skipped) listed in {path}',
                  logger='current', level=logging.WARNING)
        return path

    def _schedule_warnings(self, runner) -> List[str]:
        schedulers = runner.cfg.get('param_scheduler')
        if not schedulers:
            return []
        schedulers = schedulers if isinstance(schedulers, (list, tuple)) else [schedulers]
        if not all(isinstance(s, dict) and 'LR' in str(s.get('type')) for s in schedulers):
            return []  # per-optimizer dicts, momentum schedulers: not simulated
        base_lr = runner.cfg.optim_wrapper.get('optimizer', {}).get('lr')
        if base_lr is None:
            return []
        return schedule_warnings(schedulers, base_lr, len(runner.train_dataloader),
                                 runner.max_iters, self.floor_ratio)

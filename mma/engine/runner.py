"""mma's Runner: mmengine's, with the data pipeline made to agree with the model first and a
console for people.

Data from the model: a count the model determines is not restated in the data config. The number
of visual tokens per image (LaVIN inserts ``model.num_visual_tokens``, which the vision encoder's
feature setting decides) is filled into every ``TokenizeForLaVIN`` of the dataloaders that leaves
it unset, and the image size and normalisation of ``LoadLaVINImage`` into one that leaves them
unset; a value set by hand that differs is an error before anything is built or trained
(:func:`sync_data_with_model`). ``tools/train.py``, ``tools/test.py`` and ``--check`` apply the
same step to any runner type.

Console: mmengine prints the environment, the config, hook tables and per-parameter optimiser
settings to the console (about 1,100 lines for the tiny demo). :class:`MMARunner` filters the
console handler only (:func:`quiet_console`): progress, results and warnings on the screen, every
line in the work dir's log file. ``console_output='full'`` in the config gives mmengine's console
back. ``configs/_base_/default_runtime.py`` selects this runner (``runner_type = 'MMARunner'``).
"""
import copy
import logging
from typing import Iterator, Optional, Tuple

import torch
from mmengine.logging import MMLogger
from mmengine.runner import Runner
from torch import nn

from mma.datasets.transforms import IMAGENET_MEAN, IMAGENET_STD
from mma.errors import MMAUserError
from mma.registry import RUNNERS

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _transforms(dataset: Optional[dict], where: str) -> Iterator[Tuple[str, dict]]:
    """``(config path, transform config)`` of every pipeline step of a dataset config, through
    wrappers (``dataset=``) and concatenations (``datasets=[...]``)."""
    if not dataset:
        return
    for i, t in enumerate(dataset.get('pipeline') or []):
        if isinstance(t, dict):
            yield f'{where}.pipeline.{i}', t
    for j, d in enumerate(dataset.get('datasets') or []):
        yield from _transforms(d, f'{where}.datasets.{j}')
    if isinstance(dataset.get('dataset'), dict):
        yield from _transforms(dataset['dataset'], f'{where}.dataset')


def sync_data_with_model(cfg, model: Optional[nn.Module] = None) -> Optional[int]:
    """Fill ``num_visual_tokens`` of the dataloaders' ``TokenizeForLaVIN`` steps from the model.

    Args:
        cfg: A full config (modified in place).
        model: The model of ``cfg`` if already built; otherwise it is built on the meta device
            (no memory, no files read).

    Returns:
        The model's visual tokens per image (None for a model without that notion).

    Raises:
        ValueError: a pipeline sets a different count by hand (naming the key, both counts and
            what decides the model's).
    """
    if not any(cfg.get(k) for k in DATALOADERS):
        return None
    if model is None:
        from mma.builder import build_model
        with torch.device('meta'):
            model = build_model(cfg)
    k = getattr(model, 'num_visual_tokens', None)
    if k is None:
        return None
    vision = getattr(model, 'vision', None)
    for key in DATALOADERS:
        loader = cfg.get(key)
        for where, t in _transforms((loader or {}).get('dataset'), f'{key}.dataset'):
            if t.get('type') == 'LoadLaVINImage' and vision is not None:
                _sync_image(t, vision, where)
            if t.get('type') != 'TokenizeForLaVIN':
                continue
            mine = t.get('num_visual_tokens')
            if mine is None:
                t['num_visual_tokens'] = k
            elif mine != k:
                source = ('model.vision is None: a text-only model' if k == 0 else
                          'the vision encoder\'s feature setting (model.vision)')
                raise MMAUserError(f'{where}.num_visual_tokens={mine} but the model inserts {k} '
                                 f'visual tokens per image ({source}); remove the key from the '
                                 'data config so that it follows the model')
    return k


def _sync_image(t: dict, vision: nn.Module, where: str) -> None:
    """Image size (and normalisation) of a ``LoadLaVINImage`` step from the vision encoder."""
    size = tuple(vision.image_size)
    if 'size' in t and t['size'] is not None:
        mine = (t['size'], ) * 2 if isinstance(t['size'], int) else tuple(t['size'])
        if mine != size:
            raise MMAUserError(f'{where}.size={t["size"]} but the vision encoder takes {size} '
                             'images; remove the key to use the encoder\'s size')
    else:
        t['size'] = list(size)
    for name in ('mean', 'std'):
        if name in t and t[name] is None:
            t[name] = list(getattr(vision, f'image_{name}', None) or
                           (IMAGENET_MEAN if name == 'mean' else IMAGENET_STD))


#: (module, function) of mmengine's log calls that the console keeps at level INFO: the progress
#: line per logging interval, validation and test results, where checkpoints go, a resume.
CONSOLE_INFO_SOURCES = frozenset({
    ('logger_hook', 'after_train_iter'), ('logger_hook', 'after_val_epoch'),
    ('logger_hook', 'after_test_epoch'), ('checkpoint_hook', 'before_train'),
    ('runner', 'resume')})


#: mmengine's notices about its own internals (``FileClient``, ``HardDiskBackend``): nothing for
#: a user to act on; they stay in the log file.
_INTERNAL_NOTICES = ('will be deprecated', 'is the alias of')


class ProgressOnlyFilter(logging.Filter):
    """Let warnings and errors through (but mmengine's notices about its internals), and INFO
    records from :data:`CONSOLE_INFO_SOURCES`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return record.levelno > logging.WARNING or not any(
                n in message for n in _INTERNAL_NOTICES)
        return ((record.module, record.funcName) in CONSOLE_INFO_SOURCES
                and not message.startswith('Exp name:'))


def quiet_console(logger: logging.Logger) -> None:
    """Add :class:`ProgressOnlyFilter` to the console handlers of ``logger`` (not its files)."""
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler):
            handler.addFilter(ProgressOnlyFilter())


@RUNNERS.register_module()
class MMARunner(Runner):
    """``Runner`` that first runs :func:`sync_data_with_model` on its config (in place: the caller's
    config then shows the values the Runner uses) and whose console shows progress, results and
    warnings only (module doc). Config key ``console_output``: ``'progress'`` (default) or
    ``'full'`` (mmengine's console)."""

    @classmethod
    def from_cfg(cls, cfg) -> 'MMARunner':
        cls._sync(cfg)
        return super().from_cfg(cfg)

    @classmethod
    def _sync(cls, cfg) -> None:
        sync_data_with_model(cfg)

    def build_logger(self, *args, **kwargs) -> MMLogger:
        logger = super().build_logger(*args, **kwargs)
        mode = self.cfg.get('console_output', 'progress')
        if mode not in ('progress', 'full'):
            raise MMAUserError(f"console_output={mode!r}: expected 'progress' or 'full'")
        if mode == 'progress':
            quiet_console(logger)
        return logger


def runner_with_model(cfg, model: nn.Module) -> MMARunner:
    """An :class:`MMARunner` around an already built (and loaded) ``model``: a Runner would
    otherwise build ``cfg.model`` a second time (for a 7B model, a second copy of its weights)."""

    class _PrebuiltModelRunner(MMARunner):

        @classmethod
        def _sync(cls, cfg) -> None:
            sync_data_with_model(cfg, model)

        def build_model(self, _model_cfg):
            return model

    return _PrebuiltModelRunner.from_cfg(copy.deepcopy(cfg))

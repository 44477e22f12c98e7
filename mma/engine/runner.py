"""mma's Runner: mmengine's, with the data pipeline made to agree with the model first and a
console for people.

Data from the model: a fact the model determines is not restated in the data config. Every
dataset and transform of the dataloaders declares what it takes from the model (``FROM_MODEL``,
:mod:`mma.datasets.follow`): visual tokens per image (LaVIN inserts ``model.num_visual_tokens``,
which the vision encoder's feature setting decides), image size and normalisation, tokenizer. The
Runner fills what a config leaves unset, once, before anything is built; a count set by hand that
differs is an error naming the key (:func:`sync_data_with_model`). ``tools/train.py`` (any runner
type), ``tools/test.py`` and ``--check`` go through it.

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
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from torch import nn

from mma.builder import build_model, with_load_permission
from mma.datasets.follow import follow_model, model_data_facts
from mma.errors import MMAUserError
from mma.registry import DATASETS, RUNNERS, TRANSFORMS

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _typed_configs(node, where: str) -> Iterator[Tuple[str, dict]]:
    """``(config path, config)`` of every ``type=`` dict under ``node`` (datasets, wrappers,
    concatenations, pipelines, a dataset's own arguments), outermost first."""
    if isinstance(node, dict):
        if node.get('type') is not None:
            yield where, node
        for key, value in list(node.items()):
            yield from _typed_configs(value, f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _typed_configs(value, f'{where}.{i}')


def _registered_class(type_):
    """The class a ``type=`` names in mma's dataset or transform registry (None otherwise)."""
    if isinstance(type_, type):
        return type_
    for registry in (TRANSFORMS, DATASETS):
        cls = registry.get(type_) if isinstance(type_, str) else None
        if cls is not None:
            return cls
    return None


def sync_data_with_model(cfg, model: Optional[nn.Module] = None) -> Optional[int]:
    """Fill what the dataloaders' datasets and transforms take from the model, once.

    Every ``type=`` config under a dataloader's ``dataset`` whose class declares ``FROM_MODEL``
    (:mod:`mma.datasets.follow`) gets the arguments it leaves None from the model: visual tokens
    per image, image size, normalisation, and the tokenizer (``cfg.model.tokenizer``).

    Args:
        cfg: A full config (modified in place).
        model: The model of ``cfg`` if already built; otherwise it is built on the meta device
            (no memory, no files read).

    Returns:
        The model's visual tokens per image (None for a model without that notion).

    Raises:
        MMAUserError: a data config sets a count the model determines (visual tokens, image size)
            to another value by hand (naming the key, both values and what decides the model's).
    """
    if not any(cfg.get(k) for k in DATALOADERS):
        return None
    if model is None:
        with torch.device('meta'):
            model = build_model(cfg)
    k = getattr(model, 'num_visual_tokens', None)
    if k is None:
        return None
    facts = model_data_facts(model, (cfg.get('model') or {}).get('tokenizer'))
    with DefaultScope.overwrite_default_scope('mma'):
        for key in DATALOADERS:
            dataset = (cfg.get(key) or {}).get('dataset')
            for where, sub in list(_typed_configs(dataset, f'{key}.dataset')):
                cls = _registered_class(sub['type'])
                if cls is not None:
                    follow_model(cls, sub, facts, where)
    return k


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


class FormattedOnceConfig(Config):
    """mmengine's ``Config`` whose ``pretty_text`` is formatted once per content.

    mmengine formats the config with yapf for the log, the dumped config file, the visualizer and
    the meta of every checkpoint: up to seconds a call when a config holds long paths (yapf
    searches line splits), for the same text each time. The text is a function of the config's
    content, which is the cache key, so a config changed in between gets its new text.
    """
    _texts: 'dict[tuple, str]' = {}

    @classmethod
    def of(cls, cfg: Config) -> 'FormattedOnceConfig':
        """``cfg`` as this class, sharing its content (mmengine's Runner deep-copies it)."""
        new = cls.__new__(cls)
        for key, value in cfg.__dict__.items():
            super(Config, new).__setattr__(key, value)
        return new

    @property
    def pretty_text(self) -> str:
        key = (self.filename, self._format_python_code, repr(self._cfg_dict.to_dict()))
        if key not in self._texts:
            if len(self._texts) >= 8:
                self._texts.pop(next(iter(self._texts)))
            self._texts[key] = Config.pretty_text.fget(self)
        return self._texts[key]


@RUNNERS.register_module()
class MMARunner(Runner):
    """``Runner`` that first runs :func:`sync_data_with_model` on its config (in place: the caller's
    config then shows the values the Runner uses) and whose console shows progress, results and
    warnings only (module doc). Config key ``console_output``: ``'progress'`` (default) or
    ``'full'`` (mmengine's console)."""

    @classmethod
    def from_cfg(cls, cfg) -> 'MMARunner':
        cls._sync(cfg)
        if isinstance(cfg, Config) and not isinstance(cfg, FormattedOnceConfig):
            cfg = FormattedOnceConfig.of(cfg)
        return super().from_cfg(cfg)

    @classmethod
    def _sync(cls, cfg) -> None:
        sync_data_with_model(cfg)

    def wrap_model(self, model_wrapper_cfg, model: nn.Module) -> nn.Module:
        """mmengine's wrapping, with DDP's ``find_unused_parameters`` (when the config leaves it
        unset) taken from the model's ``may_leave_parameters_unused``: True makes DDP traverse
        the autograd graph every step, False fails on a step that leaves a parameter unused."""
        if self.distributed and model_wrapper_cfg is not None and 'DistributedDataParallel' in str(
                model_wrapper_cfg.get('type', 'MMDistributedDataParallel')):
            model_wrapper_cfg = copy.copy(model_wrapper_cfg)
            model_wrapper_cfg.setdefault('find_unused_parameters',
                                         bool(getattr(model, 'may_leave_parameters_unused', True)))
        return super().wrap_model(model_wrapper_cfg, model)

    def build_model(self, model):
        """mmengine's, with the config's ``allow_unsafe_load`` handed to a model that loads an
        ``adapter_checkpoint`` itself (:func:`mma.builder.with_load_permission`)."""
        if isinstance(model, dict):
            model = with_load_permission(dict(model), self.cfg.get('allow_unsafe_load'))
        return super().build_model(model)

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

"""mma's registries.

Runner-facing registries (models, datasets, metrics, hooks, ...) are children of mmengine's with
scope ``mma``, so an mmengine ``Runner`` with ``default_scope='mma'`` finds mma's components by name.

Component registries (``ADAPTERS``, ``ROUTERS``, ``ENCODERS``, ``PROJECTORS``, ``LLMS``,
``TOKENIZERS``) are roots of their own. mmengine keeps one child per scope under each parent, and
when it builds it switches to the registry whose scope is the default scope: a child of ``MODELS``
named ``mma`` would shadow mma's ``MODELS``. As roots with scope ``mma`` each of them resolves to itself, whatever the default
scope. A third-party package registers into them with ``@ADAPTERS.register_module()`` and a config
imports it with ``custom_imports``.
"""
import re
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import STRATEGIES as MMENGINE_STRATEGIES
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

from mma.errors import MMAKeyError

__all__ = [
    'MMARegistry', 'MODELS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'METRICS', 'EVALUATOR',
    'HOOKS', 'LOOPS', 'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS', 'MODEL_WRAPPERS', 'FUNCTIONS', 'STRATEGIES', 'RUNNERS', 'VISUALIZERS',
    'VISBACKENDS', 'ADAPTERS', 'ROUTERS', 'ENCODERS', 'PROJECTORS', 'LLMS',
    'TOKENIZERS', 'explain_unknown_types'
]


# mmengine 0.10's message for a type that no registry of the scope holds.
_NOT_FOUND = re.compile(r'(?P<type>.+?) is not in the (?P<scope>[\w.]+)::(?P<name>[\w ]+) '
                        r'registry')


def _listing(err: KeyError, registry: Registry) -> Optional[MMAKeyError]:
    """``err`` with the types ``registry`` (and its parent) can build appended, or None when
    ``err`` is not a "type not found" error."""
    msg = err.args[0] if err.args and isinstance(err.args[0], str) else ''
    if not _NOT_FOUND.match(msg) or 'Registered ' in msg:
        return None
    registry.import_from_location()
    names = ', '.join(sorted(registry.module_dict)) or '(none)'
    text = f'{msg} Registered {registry.name} types: {names}.'
    if registry.parent is not None and registry.parent.module_dict:
        text += (f' Also accepted from {registry.parent.scope}: '
                 f"{', '.join(sorted(registry.parent.module_dict))}.")
    return MMAKeyError(text)


class MMARegistry(Registry):
    """A registry whose "not found" error lists the names that are registered."""

    def build(self, cfg: Any, *args, **kwargs) -> Any:
        try:
            return super().build(cfg, *args, **kwargs)
        except KeyError as err:
            better = _listing(err, self)
            if better is None:
                raise
            raise better from None


def _child(name: str, parent: Registry, location: str) -> MMARegistry:
    return MMARegistry(name, parent=parent, scope='mma', locations=[location])


MODELS = _child('model', MMENGINE_MODELS, 'mma.models')
DATASETS = _child('dataset', MMENGINE_DATASETS, 'mma.datasets')
DATA_SAMPLERS = _child('data sampler', MMENGINE_DATA_SAMPLERS, 'mma.datasets')
TRANSFORMS = _child('transform', MMENGINE_TRANSFORMS, 'mma.datasets')
METRICS = _child('metric', MMENGINE_METRICS, 'mma.evaluation')
EVALUATOR = _child('evaluator', MMENGINE_EVALUATOR, 'mma.evaluation')
HOOKS = _child('hook', MMENGINE_HOOKS, 'mma.engine')
LOOPS = _child('loop', MMENGINE_LOOPS, 'mma.engine')
OPTIMIZERS = _child('optimizer', MMENGINE_OPTIMIZERS, 'mma.engine')
OPTIM_WRAPPERS = _child('optim wrapper', MMENGINE_OPTIM_WRAPPERS, 'mma.engine')
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, 'mma.engine')
PARAM_SCHEDULERS = _child('parameter scheduler', MMENGINE_PARAM_SCHEDULERS, 'mma.engine')
MODEL_WRAPPERS = _child('model wrapper', MMENGINE_MODEL_WRAPPERS, 'mma.engine')
FUNCTIONS = _child('function', MMENGINE_FUNCTIONS, 'mma.datasets')
STRATEGIES = _child('strategy', MMENGINE_STRATEGIES, 'mma.engine')
RUNNERS = _child('runner', MMENGINE_RUNNERS, 'mma.engine')
VISUALIZERS = _child('visualizer', MMENGINE_VISUALIZERS, 'mma.engine')
VISBACKENDS = _child('vis backend', MMENGINE_VISBACKENDS, 'mma.engine')

ADAPTERS = MMARegistry('adapter', scope='mma', locations=['mma.adapters'])
ROUTERS = MMARegistry('router', scope='mma', locations=['mma.routers'])
ENCODERS = MMARegistry('encoder', scope='mma', locations=['mma.encoders'])
PROJECTORS = MMARegistry('projector', scope='mma', locations=['mma.projectors'])
LLMS = MMARegistry('llm', scope='mma', locations=['mma.llms'])
TOKENIZERS = MMARegistry('tokenizer', scope='mma', locations=['mma.llms'])

_RUNNER_FACING = {r.name: r for r in (
    MODELS, DATASETS, DATA_SAMPLERS, TRANSFORMS, METRICS, EVALUATOR, HOOKS, LOOPS, OPTIMIZERS,
    OPTIM_WRAPPERS, OPTIM_WRAPPER_CONSTRUCTORS, PARAM_SCHEDULERS, MODEL_WRAPPERS, FUNCTIONS,
    STRATEGIES, RUNNERS, VISUALIZERS, VISBACKENDS)}


@contextmanager
def explain_unknown_types() -> Iterator[None]:
    """Make "type not found" errors of components the mmengine Runner builds list the names.

    The Runner builds models, datasets, transforms, metrics, hooks, ... through mmengine's root
    registries, which raise a bare ``KeyError('X is not in the mma::model registry ...')``. Run
    the Runner's construction and ``train()``/``test()`` inside this context (``tools/train.py``
    and ``tools/test.py`` do) and that error also lists the types mma's registry of that kind
    (and mmengine's) holds, e.g. for a misspelt ``type='LaVln'``.
    """
    try:
        yield
    except KeyError as err:
        msg = err.args[0] if err.args and isinstance(err.args[0], str) else ''
        m = _NOT_FOUND.match(msg)
        registry = _RUNNER_FACING.get(m.group('name')) if m else None
        better = _listing(err, registry) if registry is not None else None
        if better is None:
            raise
        raise better from None

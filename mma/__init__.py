"""mma: Mixture-of-Modality Adaptation (LaVIN) for cheap and quick vision-language tuning."""
__version__ = '0.1.0'

from .mmengine_import import import_mmengine_optim  # noqa: E402

import_mmengine_optim()  # before anything imports mmengine.model: no transformers at start-up

from . import adapters, encoders, llms, models, projectors, routers  # noqa: F401,E402 (register)
from .builder import build_model  # noqa: E402
from .loading import load_merged_lavin, load_model  # noqa: E402
from .registry import (ADAPTERS, DATASETS, ENCODERS, HOOKS, LLMS, METRICS, MODELS,  # noqa: E402
                       PROJECTORS, ROUTERS, TOKENIZERS)

__all__ = [
    '__version__', 'build_model', 'load_model', 'load_merged_lavin', 'ADAPTERS', 'DATASETS',
    'ENCODERS', 'HOOKS', 'LLMS', 'METRICS', 'MODELS', 'PROJECTORS', 'ROUTERS', 'TOKENIZERS'
]

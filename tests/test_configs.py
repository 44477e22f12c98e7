"""Every shipped config loads, names registered components, and builds its model (meta device)."""
import glob
import os

import pytest
import torch
from mmengine.config import Config

import mma
import mma.datasets  # noqa: F401
import mma.evaluation  # noqa: F401
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS

from mma.registry import DATASETS, FUNCTIONS, METRICS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'configs', '*.py')))


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_config_builds(path):
    cfg = Config.fromfile(path)
    cfg.model.tokenizer = None  # the tokenizer file is not on this machine
    with torch.device('meta'):
        model = mma.build_model(cfg)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
    for key in ('train_dataloader', 'test_dataloader'):
        dl = cfg.get(key)
        if dl:
            assert DATASETS.get(dl.dataset.type) is not None
            name = dl.collate_fn.type.split('.')[-1]
            assert (FUNCTIONS.get(name) or MMENGINE_FUNCTIONS.get(name)) is not None
    if cfg.get('test_evaluator'):
        assert METRICS.get(cfg.test_evaluator.type) is not None
        assert cfg.get('train_dataloader') is None or cfg.get('optim_wrapper') is not None

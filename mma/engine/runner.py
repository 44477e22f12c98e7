"""mma's Runner: mmengine's, with the data pipeline made to agree with the model first.

A count the model determines is not restated in the data config: the number of visual tokens per
image (LaVIN inserts ``model.num_visual_tokens``, which the vision encoder's feature setting
decides) is filled into every ``TokenizeForLaVIN`` of the dataloaders that leaves it unset, and one
set by hand that differs is an error before anything is built or trained
(:func:`sync_data_with_model`). ``configs/_base_/default_runtime.py`` selects this runner
(``runner_type = 'MMARunner'``); ``tools/train.py``, ``tools/test.py`` and ``--check`` apply the same
step to any runner type.
"""
import copy
from typing import Iterator, Optional, Tuple

import torch
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


@RUNNERS.register_module()
class MMARunner(Runner):
    """mmengine's ``Runner`` that runs :func:`sync_data_with_model` on its config first (in place:
    the caller's config then shows the counts the Runner uses)."""

    @classmethod
    def from_cfg(cls, cfg) -> 'MMARunner':
        sync_data_with_model(cfg)
        return super().from_cfg(cfg)


def runner_with_model(cfg, model: nn.Module) -> Runner:
    """An :class:`MMARunner` around an already built (and loaded) ``model``: a Runner would
    otherwise build ``cfg.model`` a second time (for a 7B model, a second copy of its weights)."""
    cfg = copy.deepcopy(cfg)
    sync_data_with_model(cfg, model)

    class _PrebuiltModelRunner(Runner):

        def build_model(self, _model_cfg):
            return model

    return _PrebuiltModelRunner.from_cfg(cfg)

"""``mma.build_model``: a model from a config file, an mmengine Config, or a dict."""
import os
from typing import Union

from mmengine.config import Config, ConfigDict
from torch import nn

from mma.registry import MODELS

ConfigType = Union[str, os.PathLike, Config, ConfigDict, dict]


def model_config(cfg: ConfigType) -> dict:
    """The model config (a plain dict with ``type``) of a config path, ``Config`` or dict:
    its ``model`` field, or the dict itself when it has a ``type``."""
    if isinstance(cfg, (str, os.PathLike)):
        if not os.path.isfile(cfg):
            raise FileNotFoundError(f'config file not found: {cfg}')
        cfg = Config.fromfile(str(cfg))
    if isinstance(cfg, Config):
        cfg = cfg._cfg_dict if 'model' not in cfg else cfg['model']
    cfg = ConfigDict(cfg)
    if 'model' in cfg and 'type' not in cfg:
        cfg = cfg['model']
    if 'type' not in cfg:
        raise KeyError("build_model: the config has neither a 'model' field nor a 'type' key")
    return cfg.to_dict()


def with_load_permission(model_cfg: dict, allow_unsafe) -> dict:
    """``model_cfg`` given the run's permission to unpickle its ``adapter_checkpoint`` fully (the
    config's top-level ``allow_unsafe_load``: True, or trusted paths; :mod:`mma.checkpoint_file`)
    as the model's ``allow_unsafe_load``, which ``LaVIN.init_weights`` hands to the loader. The
    same dict when there is no ``adapter_checkpoint``, no permission, or the model states its own.
    """
    if not allow_unsafe or model_cfg.get('adapter_checkpoint') is None or \
            'allow_unsafe_load' in model_cfg:
        return model_cfg
    return dict(model_cfg, allow_unsafe_load=allow_unsafe)


def build_model(cfg: ConfigType, **overrides) -> nn.Module:
    """Build a model (random or meta-device weights; no files are read).

    Args:
        cfg: A config path, an mmengine ``Config``, or a dict: either a full config with a
            ``model`` field or a model config with a ``type``.
        **overrides: Keys merged into the model config (e.g. ``llm=dict(...)``).

    Returns:
        The model. Base weights named in the config (LLaMA folder, CLIP file) are loaded by
        ``model.init_weights()``, which the mmengine Runner calls; build under
        ``with torch.device('meta'):`` to allocate nothing. :func:`mma.load_model` builds and
        loads a trained model in one call.
    """
    cfg = model_config(cfg)
    if overrides:  # nested dicts merge into the config (``_delete_=True`` replaces)
        merged = Config(dict(model=cfg))
        merged.merge_from_dict({'model': overrides})
        cfg = merged.model.to_dict()
    import mma.models  # noqa: F401  (registers LaVIN and friends)
    return MODELS.build(cfg)

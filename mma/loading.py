"""``mma.load_model``: one way to get a trained model ready for inference.

The tools (``test.py``, ``chat.py``, ``plot_routing.py``, ``merge_adapters.py``), the benchmarks and
the web demo all load a trained model through :func:`load_model`:

1. the config is read (a path, an mmengine ``Config`` or a dict) and ``cfg_options`` merged in;
2. the random seed of ``cfg.randomness`` is set as the Runner sets it, so a model whose frozen
   weights are random (the tiny demo) gets the weights it was trained with;
3. the model is built — on the meta device when every frozen part names its weight files, so a
   7B model is never allocated twice — and ``init_weights()`` reads the base weights;
4. the adapter checkpoint is loaded (mma, mmengine or original LaVIN format), or, for a merged
   ``.safetensors`` written by ``tools/merge_adapters.py``, the model takes its merged structure;
5. optionally the adapters are folded for one modality (``merge='image'`` or ``'text'``).
"""
import json
import os
from typing import Optional, Union

import torch
from mmengine.config import Config
from torch import nn

from .builder import ConfigType, build_model, model_config
from .checkpoint_file import AllowUnsafe


def _seed(cfg: Config) -> None:
    """Seed as the Runner does when the config sets a seed; otherwise leave the RNG as it is
    (the caller's ``torch.manual_seed`` then decides random weights)."""
    from mmengine.runner import set_random_seed
    randomness = cfg.get('randomness') or {}
    if randomness.get('seed') is None:
        return
    set_random_seed(seed=randomness.get('seed'),
                    deterministic=randomness.get('deterministic', False),
                    diff_rank_seed=randomness.get('diff_rank_seed', False))


def _merged_file_meta(path: Optional[str]) -> Optional[dict]:
    """The metadata of a merged-model ``.safetensors`` file, else None."""
    if path is None or not str(path).endswith('.safetensors') or not os.path.isfile(path):
        return None
    from safetensors import safe_open
    with safe_open(path, framework='pt') as f:
        meta = f.metadata() or {}
    return meta if 'mma_merged_modality' in meta else None


def _files_fill_model(model: nn.Module) -> bool:
    """Whether ``init_weights`` fills every frozen tensor from files (so meta building is safe)."""
    parts = [getattr(model, 'llm', None), getattr(model, 'vision', None)]
    return all(p is None or p.weights_path is not None for p in parts)


def load_model(config: ConfigType, checkpoint: Optional[str] = None,
               device: Union[str, torch.device] = 'cpu', merge: Optional[str] = None,
               cfg_options: Optional[dict] = None, dtype: Optional[torch.dtype] = None,
               allow_unsafe: AllowUnsafe = None) -> nn.Module:
    """Build a model from its config and load its trained weights, in eval mode.

    Args:
        config: A config path, an mmengine ``Config`` or a dict (full config or model config).
        checkpoint: Adapter weights (an mma adapter file, an mmengine ``epoch_N.pth`` or an
            original LaVIN ``checkpoint-N.pth``) or a merged model written by
            ``tools/merge_adapters.py``. Default: ``model.adapter_checkpoint`` of the config, if
            any; without either, the adapters keep their initial values.
        device: Where the returned model lives.
        merge: ``'image'`` or ``'text'``: fold the adapters for that modality
            (:func:`mma.models.merge_lavin`); the model is then valid for that modality only.
        cfg_options: Config keys to override (as ``--cfg-options``).
        dtype: Dtype of the frozen weights as loaded (default: the config's).
        allow_unsafe: Permission to unpickle the adapter checkpoint fully when it holds more
            than tensors and plain data (True, or trusted paths; see
            :mod:`mma.checkpoint_file`). Default: the config's ``allow_unsafe_load``.

    Returns:
        The model, on ``device``, in eval mode (its trainable tensors still flagged
        ``requires_grad``, so it can be wrapped in DDP or trained on).
    """
    from .models.adapter_checkpoint import load_adapter_checkpoint
    from .models.merge import load_merged_state_dict, merge_lavin
    cfg = config if isinstance(config, Config) else None
    if cfg is None:
        if isinstance(config, (str, os.PathLike)):
            if not os.path.isfile(config):
                raise FileNotFoundError(f'config file not found: {config}')
            cfg = Config.fromfile(str(config))
        else:
            cfg = Config(dict(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    merged_meta = _merged_file_meta(checkpoint)
    if allow_unsafe is None:
        allow_unsafe = cfg.get('allow_unsafe_load', False)
    model_cfg = model_config(cfg)
    # the adapters are loaded here, after init_weights, with the caller's permission
    adapters = None if merged_meta is not None else (
        str(checkpoint) if checkpoint is not None else model_cfg.get('adapter_checkpoint'))
    if 'adapter_checkpoint' in model_cfg or checkpoint is not None:
        model_cfg['adapter_checkpoint'] = None
    state = torch.random.get_rng_state()
    with torch.device('meta'):
        probe = build_model(model_cfg)
    if merged_meta is not None:
        from safetensors.torch import load_file
        model = load_merged_state_dict(probe, load_file(checkpoint))
    else:
        if _files_fill_model(probe):
            model = probe
            if dtype is not None:
                model.to(dtype)  # free on meta: the loaders cast once to this dtype
        else:  # random frozen weights (tiny models): built as the Runner builds them
            del probe
            torch.random.set_rng_state(state)
            _seed(cfg)
            model = build_model(model_cfg)
            if dtype is not None:
                model.to(dtype)
        model.init_weights()
        if adapters is not None:
            load_adapter_checkpoint(model, adapters, allow_unsafe=allow_unsafe)
    unfilled = [n for n, p in model.named_parameters() if p.is_meta]
    if unfilled:
        raise ValueError(f'load_model: no weights for {len(unfilled)} tensors, e.g. '
                         f'{unfilled[:5]} (is every base weight file set in the config?)')
    if merge is not None:
        model = merge_lavin(model.eval(), merge, inplace=True)
    return model.to(device).eval()


def load_merged_lavin(path: str, config: Optional[ConfigType] = None) -> nn.Module:
    """A merged model written by ``tools/merge_adapters.py``: built on the meta device from
    ``config`` (default: the model config stored in the file) and filled from the file."""
    meta = _merged_file_meta(path)
    if meta is None:
        raise ValueError(f'{path} is not a merged model written by tools/merge_adapters.py')
    if config is None:
        if 'mma_model_config' not in meta:
            raise ValueError(f'{path} stores no model config; pass config=')
        config = json.loads(meta['mma_model_config'])
    return load_model(config, checkpoint=path)

"""Load an adapter-only checkpoint (the trainable tensors) with strict key checking."""
from typing import Dict

import torch
from torch import Tensor, nn

from mma.adapters.utils import trainable_state_dict


def read_adapter_state(path: str) -> Dict[str, Tensor]:
    """Tensors of an adapter checkpoint: a plain state dict, or one under ``state_dict`` (mmengine)
    or ``model`` (reference); a ``module.`` prefix (distributed runs) is dropped."""
    obj = torch.load(path, map_location='cpu', weights_only=True)
    for key in ('state_dict', 'model'):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f'{path} holds no state dict of tensors')
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in obj.items()}


def load_adapter_checkpoint(model: nn.Module, path: str) -> None:
    """Load ``path`` into the trainable (adapter) tensors of ``model``.

    Strict on those keys: every trainable tensor must be in the file, the file may hold nothing
    else, and shapes must match. The frozen weights are left as they are.
    """
    sd = read_adapter_state(path)
    own = trainable_state_dict(model)
    missing, unexpected = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
    if missing or unexpected:
        raise KeyError(f'adapter checkpoint {path} does not match the model: missing '
                       f'{len(missing)} {missing[:5]}, unexpected {len(unexpected)} '
                       f'{unexpected[:5]}')
    bad = [f'{k}: {tuple(sd[k].shape)} vs {tuple(v.shape)}' for k, v in own.items()
           if sd[k].shape != v.shape]
    if bad:
        raise ValueError(f'adapter checkpoint {path}: shape mismatch {bad[:5]}')
    result = model.load_state_dict(sd, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys

"""LLaVA-1.5's visual projector (``mm_projector_type='mlp2x_gelu'``) and reading its weights."""
import os
import re
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mma.registry import PROJECTORS

#: LLaVA's names of the two layers (release: ``model.mm_projector.{0,2}``, stage 1's
#: ``mm_projector.bin`` too; llava-hf: ``multi_modal_projector.linear_{1,2}``, transformers 5 in
#: memory under ``model.``) -> this module's.
_LLAVA_NAMES = re.compile(r'^(?:model\.)?(?:mm_projector\.(?P<a>[02])|'
                          r'multi_modal_projector\.linear_(?P<b>[12]))\.(?P<kind>weight|bias)$')


@PROJECTORS.register_module()
class MLPProjector(nn.Module):
    """Linear(vision width -> hidden) -> GELU -> Linear(hidden -> LLM dim), PyTorch's default init.

    LLaVA-1.5's ``mlp2x_gelu`` with ``hidden`` = the LLM dim (its default). LLaVA checkpoints hold
    it as ``model.mm_projector.0.*`` / ``.2.*``: those are ``fc1.*`` / ``fc2.*`` here.

    Args:
        in_features: Width of a vision feature (1024 for CLIP ViT-L/14-336).
        out_features: The LLM's embedding width.
        hidden: Hidden width; None: ``out_features``, as LLaVA.
        weights: LLaVA's projector weights, loaded by :meth:`load_pretrained` (the model's
            ``init_weights``), never at construction: a stage-1 ``mm_projector.bin``, a folder
            holding one, LLaVA's release folder (``model.mm_projector.{0,2}.*``) or a llava-hf
            folder (``multi_modal_projector.linear_{1,2}.*``). Strict: both layers, their shapes.
    """

    def __init__(self, in_features: int, out_features: int, hidden: Optional[int] = None,
                 weights: Optional[str] = None):
        super().__init__()
        hidden = out_features if hidden is None else hidden
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)
        self.weights = weights

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))

    def load_pretrained(self, path: Optional[str] = None) -> None:
        """Load :attr:`weights` (or ``path``) into the two layers, strictly."""
        path = path or self.weights
        if path is None:
            return
        sd, source = read_llava_projector(path)
        own = self.state_dict()
        missing = sorted(set(own) - set(sd))
        if missing:
            raise KeyError(f'{source}: lacks LLaVA projector weights for {missing} (expected '
                           'model.mm_projector.{0,2}.* or multi_modal_projector.linear_{1,2}.*)')
        for k, v in own.items():
            key, t = sd[k]
            if tuple(t.shape) != tuple(v.shape):
                raise ValueError(f'{source}: {key} has shape {tuple(t.shape)} but the model\'s '
                                 f'projector {k} has {tuple(v.shape)} (a tower or LLM of '
                                 'another width?)')
        on_meta = any(p.is_meta for p in self.parameters())
        device = torch.device('cpu') if on_meta else self.fc1.weight.device
        self.load_state_dict({k: sd[k][1].to(device=device, dtype=v.dtype)
                              for k, v in own.items()}, assign=on_meta)


def read_llava_projector(path: str) -> Tuple[Dict[str, Tuple[str, Tensor]], str]:
    """``({'fc1.weight': (key in the file, tensor), ...}, the file read)`` from a LLaVA
    projector file or folder (only the projector's tensors are read)."""
    from mma.fileio import open_safetensors
    from mma.llms.hf_format import hf_weight_files
    from mma.llms.meta_format import _mmap_load
    if os.path.isdir(path):
        stage1 = os.path.join(path, 'mm_projector.bin')
        files = [stage1] if os.path.isfile(stage1) else hf_weight_files(path)
    elif os.path.isfile(path):
        files = [path]
    else:
        raise FileNotFoundError(f'projector weights not found: {path}')
    out, source = {}, path
    for file in files:
        if file.endswith('.safetensors'):
            with open_safetensors(file, 'LLaVA projector weights') as f:
                found = {k: f.get_tensor(k) for k in f.keys() if _LLAVA_NAMES.match(k)}
        else:
            found = {k: v for k, v in _mmap_load(file).items() if _LLAVA_NAMES.match(k)}
        for key, t in found.items():
            m = _LLAVA_NAMES.match(key)
            layer = 'fc1' if (m.group('a') or m.group('b')) in ('0', '1') else 'fc2'
            out[f'{layer}.{m.group("kind")}'] = (key, t)
            source = file
    if not out:
        raise KeyError(f'{path}: no LLaVA projector weights (expected keys '
                       'model.mm_projector.{0,2}.* or multi_modal_projector.linear_{1,2}.*)')
    return out, source

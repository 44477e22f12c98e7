"""Any frozen open_clip vision tower, returning the features a config asks for, with adapter slots.

Features (``feature_type``):

* ``'cls'`` — LaVIN's: the class token after every k-th block (or explicit block indices);
* ``'patch'`` — the patch tokens of one block, class token dropped (LLaVA-1.5: the penultimate
  block, 576 tokens at 336 px);
* ``'pooled'`` — the tower's own pooled output (open_clip's ``encode_image`` before
  normalisation; SigLIP's attention pool).
"""
import os
from types import ModuleType
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mma.registry import ENCODERS
from mma.slots import AdapterSlot, base_state_dict, linear_slots

from . import native_tower, timm_tower
from .base import VisionEncoder
from .hf_clip import folder_vision_cfg
from .open_clip_towers import (build_tower, load_tower_weights, preprocess_stats,
                               refuse_towerless_llava)

FEATURE_TYPES = ('cls', 'patch', 'pooled')


@ENCODERS.register_module()
class CLIPViT(VisionEncoder):
    """An open_clip vision tower (its own ViT or a timm-based one: SigLIP, EVA02) as an encoder.

    Args:
        model_name: An open_clip model name (``'ViT-L-14-quickgelu'`` for LaVIN,
            ``'ViT-L-14-336-quickgelu'`` for LLaVA-1.5, ``'ViT-H-14'``, ``'EVA02-L-14-336'``,
            ``'ViT-B-16-SigLIP'``, ``'ViT-SO400M-14-SigLIP-384'``, ...).
        vision_cfg: An explicit open_clip ``vision_cfg`` dict (plus ``embed_dim``) instead of
            ``model_name`` (tiny test towers); set ``head_width`` so that ``width / head_width`` is
            the head count.
        quick_gelu: Force QuickGELU (needed by OpenAI weights); default from the model config.
        pretrained: Local weights file (open_clip/OpenAI state dict, ``.safetensors`` or OpenAI
            TorchScript), loaded by :meth:`load_pretrained`, never at construction. With
            ``model_name=None`` and no ``vision_cfg``, an HF CLIP or llava-hf folder whose
            ``config.json`` gives the tower's sizes (:func:`~.hf_clip.folder_vision_cfg`).
        feature_type: ``'cls'``, ``'patch'`` or ``'pooled'`` (see the module docstring).
        feature_every: ``'cls'``: the class token after every k-th block (k=4 gives 6 tokens on
            ViT-L/14).
        out_indices: ``'cls'``: explicit 0-based block indices instead of ``feature_every``.
        patch_layer: ``'patch'``: the block whose output is taken, negative from the end like
            LLaVA's ``mm_vision_select_layer`` (-2: the penultimate block).
        image_mean, image_std: Override the normalisation read from the tower's open_clip config.
    """

    def __init__(self, model_name: Optional[str] = 'ViT-L-14-quickgelu',
                 vision_cfg: Optional[dict] = None, quick_gelu: Optional[bool] = None,
                 pretrained: Optional[str] = None, feature_type: str = 'cls',
                 feature_every: int = 4, out_indices: Optional[Sequence[int]] = None,
                 patch_layer: int = -2, image_mean: Optional[Sequence[float]] = None,
                 image_std: Optional[Sequence[float]] = None):
        super().__init__()
        if model_name is None and vision_cfg is None and pretrained is not None:
            found = folder_vision_cfg(pretrained) if os.path.isdir(pretrained) else None
            if found is None:
                refuse_towerless_llava(pretrained)
                raise ValueError(f'CLIPViT: model_name and vision_cfg are None and {pretrained} '
                                 'has no HF config.json to read the tower from')
            vision_cfg = found[0]
            quick_gelu = found[1] if quick_gelu is None else quick_gelu
        self.model_name = model_name if vision_cfg is None else None
        self.pretrained = pretrained
        self.tower = build_tower(model_name, vision_cfg, quick_gelu)
        if feature_type not in FEATURE_TYPES:
            raise ValueError(f'CLIPViT feature_type {feature_type!r}: expected one of '
                             f'{FEATURE_TYPES}')
        self.feature_type = feature_type
        mean, std = preprocess_stats(self.model_name)
        self._mean = tuple(image_mean) if image_mean is not None else mean
        self._std = tuple(image_std) if image_std is not None else std
        n = len(self.blocks)
        if feature_type == 'cls':
            if not self.has_cls:
                raise ValueError(f'{self._what} has no CLS token (a SigLIP-style tower): use '
                                 "feature_type='patch' (patch tokens of a block) or 'pooled' "
                                 '(its attention-pool output)')
            if out_indices is None:
                out_indices = range(feature_every - 1, n, feature_every)
        elif feature_type == 'patch':
            if not -n <= patch_layer < n:
                raise ValueError(f'CLIPViT patch_layer {patch_layer} is outside the {n} blocks '
                                 f'of {self._what}')
            out_indices = [patch_layer % n]
        else:
            out_indices = [n - 1]  # the whole tower runs
        self.out_indices: Tuple[int, ...] = tuple(sorted(int(i) for i in out_indices))
        if not self.out_indices or not all(0 <= i < n for i in self.out_indices):
            raise ValueError(f'CLIPViT out_indices {self.out_indices} must be non-empty and within '
                             f'the {n} blocks')

    # -- what kind of tower ------------------------------------------------------------------
    @property
    def _kind(self) -> ModuleType:
        """The module that knows how to run this tower (open_clip's own ViT or timm's)."""
        return timm_tower if timm_tower.is_timm_tower(self.tower) else native_tower

    @property
    def _what(self) -> str:
        return self.model_name or 'the vision_cfg tower'

    @property
    def has_cls(self) -> bool:
        """Whether the tower's sequence holds a class token (SigLIP's does not)."""
        return timm_tower.has_cls(self.tower) if self._kind is timm_tower else True

    @property
    def _num_prefix(self) -> int:
        return (timm_tower.num_prefix(self.tower) if self._kind is timm_tower
                else native_tower.NUM_PREFIX)

    # -- the contract ------------------------------------------------------------------------
    @property
    def width(self) -> int:
        if self.feature_type == 'pooled':
            return self._kind.pooled_shape(self.tower)[1]
        return self._kind.width(self.tower)

    @property
    def num_features(self) -> int:
        if self.feature_type == 'cls':
            return len(self.out_indices)
        if self.feature_type == 'patch':
            return self._kind.num_patches(self.tower)
        return self._kind.pooled_shape(self.tower)[0]

    @property
    def image_size(self) -> Tuple[int, int]:
        size = self.tower.image_size
        return tuple(size) if isinstance(size, (tuple, list)) else (size, size)

    @property
    def image_mean(self) -> Tuple[float, ...]:
        """Per-channel mean (in [0, 1] units) of the tower's preprocessing."""
        return self._mean

    @property
    def image_std(self) -> Tuple[float, ...]:
        """Per-channel std (in [0, 1] units) of the tower's preprocessing."""
        return self._std

    @property
    def weights_path(self) -> Optional[str]:
        return self.pretrained

    @property
    def blocks(self) -> nn.ModuleList:
        return self._kind.blocks(self.tower)

    def adapter_slots(self, placement: str) -> List[AdapterSlot]:
        """Adapters wrap a block's pre-attention norm (``'attn'``), pre-MLP norm (``'ffn'``) or
        both (``'block'``), or sit around named linear layers (``'linear:up,down'``; targets:
        ``native_tower.LINEAR_TARGETS`` / ``timm_tower.linear_targets``); blocks after the last
        feature block are not run, so they get none."""
        if placement.startswith('linear:'):
            targets = (timm_tower.linear_targets(self.tower) if self._kind is timm_tower
                       else native_tower.LINEAR_TARGETS)
            return linear_slots(self.blocks[:self.out_indices[-1] + 1], placement, targets,
                                wraps=True)
        names = (timm_tower.slot_names(self.tower, placement) if self._kind is timm_tower
                 else native_tower.slot_names(placement))
        return [AdapterSlot(blk, n, folds, wraps=True)
                for blk in self.blocks[:self.out_indices[-1] + 1] for n, folds in names]

    def _all_slots(self) -> List[AdapterSlot]:
        slots = []
        for placement in ('attn', 'ffn', 'linear:all'):  # a tower may offer one kind only
            try:
                slots += self.adapter_slots(placement)
            except ValueError:
                pass
        return slots

    def features(self, images: Tensor) -> Tensor:
        """images (B, 3, H, W) -> features (B, num_features, width)."""
        if self.feature_type == 'pooled':
            out = self.tower(images.to(next(self.tower.parameters()).dtype))
            out = out[0] if isinstance(out, tuple) else out  # (pooled, tokens) if output_tokens
            return out if out.dim() == 3 else out.unsqueeze(1)
        cls = self.feature_type == 'cls'
        seqs = self._kind.block_tokens(self.tower, images, self.out_indices, cls_only=cls)
        if cls:  # the class token is the first prefix token
            return torch.stack([x[:, 0] for x in seqs], dim=1)
        return seqs[0][:, self._num_prefix:]

    def load_pretrained(self, path: Optional[str] = None) -> None:
        """Load the tower's weights from a local CLIP file (``visual.*`` keys or bare keys).

        Strict (:func:`~mma.encoders.open_clip_towers.load_tower_weights`): every tower weight
        must be in the file with its shape, and the file may hold no other ``visual.*`` weights.
        Inserted adapters are left as they are.
        """
        path = path or self.pretrained
        if path is not None:
            load_tower_weights(self.tower, path, self._what,
                               base_state_dict(self.tower, self._all_slots()))

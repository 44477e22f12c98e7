"""Frozen CLIP ViT (open_clip) returning intermediate CLS tokens, with adapter insertion points."""
import os
import warnings
import zipfile
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mma.errors import CorruptFileError
from mma.registry import ENCODERS
from mma.slots import AdapterSlot

from .base import VisionEncoder


def _build_tower(model_name: Optional[str], vision_cfg: Optional[dict],
                 quick_gelu: Optional[bool]) -> nn.Module:
    import open_clip
    from open_clip.model import _build_vision_tower
    if vision_cfg is None:
        if model_name is None:
            raise ValueError('CLIPViT needs model_name (e.g. "ViT-L-14-quickgelu") or vision_cfg')
        model_cfg = open_clip.get_model_config(model_name)
        if model_cfg is None:
            raise KeyError(f'open_clip has no model config named {model_name!r}; known ViTs: '
                           f'{", ".join(m for m in open_clip.list_models() if "ViT" in m)}')
        vision_cfg = model_cfg['vision_cfg']
        embed_dim = model_cfg['embed_dim']
        if quick_gelu is None:
            quick_gelu = model_cfg.get('quick_gelu', False)
    else:
        vision_cfg = dict(vision_cfg)
        embed_dim = vision_cfg.pop('embed_dim', vision_cfg.get('width', 64))
    return _build_vision_tower(embed_dim, vision_cfg, quick_gelu=bool(quick_gelu))


def load_clip_state_dict(path: str) -> Dict[str, Tensor]:
    """Read a CLIP checkpoint: open_clip/OpenAI state dict (``.pt``/``.bin``/``.pth``, optionally
    under ``state_dict``), a ``.safetensors`` file, or OpenAI's TorchScript archive."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'CLIP weights file not found: {path}')
    try:
        if path.endswith('.safetensors'):
            from safetensors.torch import load_file
            sd = load_file(path)
        elif _is_torchscript(path):  # OpenAI's ViT-L-14.pt: TorchScript is the only way in
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', FutureWarning)
                sd = torch.jit.load(path, map_location='cpu').state_dict()
        else:
            sd = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except Exception as err:
        raise CorruptFileError(
            f'could not read CLIP weights {path} (expected an open_clip/OpenAI state dict, '
            f'.safetensors or OpenAI TorchScript .pt): {err}') from err
    if isinstance(sd, dict) and isinstance(sd.get('state_dict'), dict):
        sd = sd['state_dict']
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise ValueError(f'CLIP weights {path} are not a state dict of tensors')
    return dict(sd)


def _is_torchscript(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith('/constants.pkl') or n == 'constants.pkl' for n in z.namelist())


@ENCODERS.register_module()
class CLIPViT(VisionEncoder):
    """The visual tower of CLIP, returning the CLS token after selected residual blocks.

    Args:
        model_name: An open_clip model name (``'ViT-L-14-quickgelu'`` for LaVIN).
        vision_cfg: An explicit open_clip ``vision_cfg`` dict instead of ``model_name`` (tiny
            test towers); set ``head_width`` so that ``width / head_width`` is the head count.
        quick_gelu: Force QuickGELU (needed by OpenAI weights); default from the model config.
        pretrained: Local weights file (see :func:`load_clip_state_dict`), loaded by
            :meth:`load_pretrained`, never at construction.
        feature_every: Take the CLS token after every k-th block (k=4 gives 6 tokens on ViT-L/14).
        out_indices: Explicit 0-based block indices instead of ``feature_every``.
    """

    def __init__(self, model_name: Optional[str] = 'ViT-L-14-quickgelu',
                 vision_cfg: Optional[dict] = None, quick_gelu: Optional[bool] = None,
                 pretrained: Optional[str] = None, feature_every: int = 4,
                 out_indices: Optional[Sequence[int]] = None):
        super().__init__()
        self.model_name = model_name if vision_cfg is None else None
        self.pretrained = pretrained
        self.tower = _build_tower(model_name, vision_cfg, quick_gelu)
        n = len(self.tower.transformer.resblocks)
        if out_indices is None:
            out_indices = range(feature_every - 1, n, feature_every)
        self.out_indices: Tuple[int, ...] = tuple(sorted(int(i) for i in out_indices))
        if not self.out_indices or not all(0 <= i < n for i in self.out_indices):
            raise ValueError(f'CLIPViT out_indices {self.out_indices} must be non-empty and within '
                             f'the {n} blocks')

    @property
    def width(self) -> int:
        return self.tower.transformer.width

    @property
    def num_features(self) -> int:
        return len(self.out_indices)

    @property
    def image_size(self) -> Tuple[int, int]:
        size = self.tower.image_size
        return tuple(size) if isinstance(size, (tuple, list)) else (size, size)

    @property
    def weights_path(self) -> Optional[str]:
        return self.pretrained

    @property
    def blocks(self) -> nn.ModuleList:
        return self.tower.transformer.resblocks

    def adapter_slots(self, placement: str) -> List[AdapterSlot]:
        """``'attn'`` adapts ``ln_1`` (its output feeds the attention's packed ``in_proj``),
        ``'ffn'`` adapts ``ln_2`` (feeds ``mlp.c_fc``), ``'block'`` both; blocks after the last
        feature block are not run, so they get none."""
        names = {'attn': [('ln_1', ('attn.in_proj', ))], 'ffn': [('ln_2', ('mlp.c_fc', ))]}
        names['block'] = names['attn'] + names['ffn']
        if placement not in names:
            raise ValueError(f"unknown ViT adapter placement {placement!r}; expected 'attn', "
                             "'ffn' or 'block'")
        return [AdapterSlot(blk, n, folds) for blk in self.blocks[:self.out_indices[-1] + 1]
                for n, folds in names[placement]]

    def features(self, images: Tensor) -> Tensor:
        """images (B, 3, H, W) -> CLS tokens (B, num_tokens, width)."""
        t = self.tower
        x = t.conv1(images.to(t.conv1.weight.dtype))  # (B, W, g, g)
        x = x.flatten(2).transpose(1, 2)  # (B, g*g, W)
        cls = t.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + t.positional_embedding.to(x.dtype)  # (B, 1+g*g, W)
        x = t.ln_pre(t.patch_dropout(x))
        feats = []
        last = self.out_indices[-1]
        for i, blk in enumerate(self.blocks[:last]):
            x = _run_block(blk, x)
            if i in self.out_indices:
                feats.append(x[:, 0])
        feats.append(_run_block(self.blocks[last], x, cls_only=True)[:, 0])
        return torch.stack(feats, dim=1)

    def load_pretrained(self, path: Optional[str] = None) -> None:
        """Load the tower's weights from a local CLIP file (``visual.*`` keys or bare keys).

        Strict: every tower weight must be in the file with its shape, and the file may hold no
        other ``visual.*`` weights; tensors are cast to the tower's dtype. Inserted adapters are
        left as they are.
        """
        path = path or self.pretrained
        if path is None:
            return
        sd = load_clip_state_dict(path)
        if any(k.startswith('visual.') for k in sd):
            sd = {k[len('visual.'):]: v for k, v in sd.items() if k.startswith('visual.')}
        what = self.model_name or 'the vision_cfg tower'
        own = {k: v for k, v in self.tower.state_dict().items() if '.adapter.' not in k}
        if 'conv1.weight' not in sd:
            raise ValueError(f'{path} does not look like CLIP vision weights: expected keys like '
                             f'visual.conv1.weight, found e.g. {sorted(sd)[:5]}')
        missing = sorted(set(own) - set(sd))
        unexpected = sorted(set(sd) - set(own))
        if missing or unexpected:
            raise KeyError(f'CLIP weights {path} do not match {what}: missing {len(missing)} keys '
                           f'{missing[:5]}, unexpected {len(unexpected)} keys {unexpected[:5]} '
                           '(a different ViT size or depth?)')
        bad = [f'{k}: file {tuple(sd[k].shape)} vs model {tuple(v.shape)}'
               for k, v in own.items() if tuple(sd[k].shape) != tuple(v.shape)]
        if bad:
            raise ValueError(f'CLIP weights {path} do not match {what}: shape mismatch for '
                             f'{"; ".join(bad[:5])}')
        device = next(self.tower.parameters()).device
        device = torch.device('cpu') if device.type == 'meta' else device
        sd = {k: sd[k].to(device=device, dtype=v.dtype) for k, v in own.items()}
        self.tower.load_state_dict(sd, strict=False, assign=_on_meta(self))


def _on_meta(module: nn.Module) -> bool:
    return any(p.is_meta for p in module.parameters())


def _is_standard_block(blk: nn.Module) -> bool:
    """An open_clip ``ResidualAttentionBlock`` with batch-first self-attention."""
    attn = getattr(blk, 'attn', None)
    return (isinstance(attn, nn.MultiheadAttention) and attn.batch_first and
            attn._qkv_same_embed_dim and attn.in_proj_weight is not None and
            not hasattr(blk, 'ln_1_kv') and all(hasattr(blk, n) for n in ('ln_1', 'ls_1',
                                                                         'ln_2', 'mlp', 'ls_2')))


def _self_attention(mha: nn.MultiheadAttention, h: Tensor, cls_only: bool) -> Tensor:
    """``mha(h, h, h)`` with its own weights, computed batch-first: nn.MultiheadAttention turns
    batch-first input sequence-first, and its input projection then runs as a batched matmul over
    every position (a weight copy per token) - several times slower on CPU."""
    e, heads = mha.embed_dim, mha.num_heads
    w, b = mha.in_proj_weight, mha.in_proj_bias
    if cls_only:  # only the CLS query is needed; keys and values from every token
        q = F.linear(h[:, :1], w[:e], None if b is None else b[:e])
        k, v = F.linear(h, w[e:], None if b is None else b[e:]).chunk(2, dim=-1)
    else:
        q, k, v = F.linear(h, w, b).chunk(3, dim=-1)
    q, k, v = (z.unflatten(-1, (heads, -1)).transpose(1, 2) for z in (q, k, v))  # (B, H, L, Dh)
    dropout = mha.dropout if mha.training else 0.0
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
    return mha.out_proj(out.transpose(1, 2).flatten(2))


def _run_block(blk: nn.Module, x: Tensor, cls_only: bool = False) -> Tensor:
    """One residual block on (B, L, W). ``cls_only``: only the CLS output is wanted, so only the
    CLS query is computed and only the CLS token goes through the MLP (returns (B, 1, W))."""
    if not _is_standard_block(blk):  # a block layout we do not know: run it whole
        return blk(x)
    h = blk.ln_1(x)  # (adapters, if inserted, act here on every token: keys/values need them)
    x = (x[:, :1] if cls_only else x) + blk.ls_1(_self_attention(blk.attn, h, cls_only))
    return x + blk.ls_2(blk.mlp(blk.ln_2(x)))

"""Folding LaVIN's adapters into the frozen weights for deployment, one model per modality.

What is merged (exactly, up to float rounding):

* **LLM adapters**, routed or not. A routed adapter's weights come from the hidden state of the
  modality token, which sees only itself (reference doc §2): at inference they are a constant
  ``(K,)`` per modality and layer, computed here by running the LLM on the modality token alone.
  Placement ``attn`` folds into ``wq``, ``wk``, ``wv`` (which gain a bias); ``ffn`` folds into
  ``w1`` and ``w3``.
* **Non-routed ViT adapters**: ``ln_1`` adapters fold into the attention's ``in_proj``, ``ln_2``
  adapters into ``mlp.c_fc``.

What is *not* merged: **routed ViT adapters** (LaVIN's default). They route every image token by its
own features, so their mixing weights change from token to token and image to image; no single
linear map reproduces them. They stay in the merged model as they are (still exact, still costing
their small bottleneck). A merged model is valid only for its modality: the image model for
samples with an image, the text model for text-only samples.

Keep-originals semantics: :func:`merge_lavin` returns a new model that shares every untouched tensor
with the original and never writes into the original, which keeps its adapters and weights — the
"unmerged" model is simply the original (or the base weights plus the adapter checkpoint). Merging
is not undone in place: ``inplace=True`` saves the module copy and gives the original up.
"""
import copy
from typing import Dict, List

import torch
from torch import Tensor, nn

from mma.adapters.rep_adapter import RepAdapter, RoutedRepAdapter
from mma.adapters.utils import AdaptedModule, merge_into_linear
from mma.routers.routing import RoutingContext

MODALITIES = {'image': True, 'text': False}


@torch.no_grad()
def llm_routing_weights(model: nn.Module, has_image: bool) -> Dict[nn.Module, Tensor]:
    """``{routed LLM adapter: (K,) weights}`` for one modality, from the modality token alone."""
    emb = model.modality_embedding.weight[int(has_image)]
    emb = emb.to(model.llm.tok_embeddings.weight.dtype)[None, None]  # (1, 1, D)
    ctx = RoutingContext(token_index=torch.zeros(1, dtype=torch.long, device=emb.device),
                         cache={})
    model.llm(emb, ctx=ctx)
    return {m: w[0, 0] for m, w in ctx.cache.items()}


def _affine(adapter: nn.Module, weights: Dict[nn.Module, Tensor]):
    if isinstance(adapter, RoutedRepAdapter):
        return adapter.affine(weights[adapter])
    if isinstance(adapter, RepAdapter):
        return adapter.affine()
    raise TypeError(f'cannot merge adapter of type {type(adapter).__name__}')


def share_tensors_copy(model: nn.Module) -> nn.Module:
    """A copy of the module tree whose parameters and buffers are the original tensors."""
    memo = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
    return copy.deepcopy(model, memo)


@torch.no_grad()
def merge_lavin(model: nn.Module, modality: str, inplace: bool = False) -> nn.Module:
    """Fold the adapters of a LaVIN model into its linear layers for one ``modality``.

    Args:
        model: A LaVIN model (eval semantics: dropout is ignored).
        modality: ``'image'`` (samples with an image) or ``'text'`` (text-only samples).
        inplace: Modify ``model`` itself instead of a tensor-sharing copy.

    Returns:
        The merged model: no LLM adapters, no non-routed ViT adapters (see the module doc).
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be 'image' or 'text', got {modality!r}")
    weights = llm_routing_weights(model, MODALITIES[modality])
    out = model if inplace else share_tensors_copy(model)
    weights = {_twin(model, out, m): w for m, w in weights.items()}
    for blk in out.llm.layers:
        for slot, targets in (('adapter_attn', ('attention', ('wq', 'wk', 'wv'))),
                              ('adapter_ffn', ('feed_forward', ('w1', 'w3')))):
            adapter = getattr(blk, slot)
            if adapter is None:
                continue
            aff = _affine(adapter, weights)
            parent = getattr(blk, targets[0])
            for name in targets[1]:
                setattr(parent, name, merge_into_linear(getattr(parent, name), aff))
            setattr(blk, slot, None)
    if getattr(out, 'vision', None) is not None:
        for blk in out.vision.blocks:
            for norm in ('ln_1', 'ln_2'):
                wrapped = getattr(blk, norm)
                if not isinstance(wrapped, AdaptedModule) or \
                        isinstance(wrapped.adapter, RoutedRepAdapter):
                    continue  # routed ViT adapters route per token: not mergeable
                aff = _affine(wrapped.adapter, {})
                if norm == 'ln_1':
                    _merge_into_in_proj(blk.attn, aff)
                else:
                    blk.mlp.c_fc = merge_into_linear(blk.mlp.c_fc, aff)
                setattr(blk, norm, wrapped.module)
    return out


def _twin(src: nn.Module, dst: nn.Module, module: nn.Module) -> nn.Module:
    """The module of ``dst`` at the path ``module`` has in ``src``."""
    for name, m in src.named_modules():
        if m is module:
            return dst.get_submodule(name)
    raise KeyError('module not found in the source model')


def _merge_into_in_proj(attn: nn.Module, affine) -> None:
    if not isinstance(attn, nn.MultiheadAttention) or attn.in_proj_weight is None:
        raise TypeError(f'cannot merge a ViT adapter into {type(attn).__name__}: expected '
                        'nn.MultiheadAttention with a packed in_proj')
    tmp = nn.Linear(attn.embed_dim, 3 * attn.embed_dim, device='meta')
    tmp.weight, tmp.bias = attn.in_proj_weight, attn.in_proj_bias
    merged = merge_into_linear(tmp, affine)
    attn.in_proj_weight = nn.Parameter(merged.weight, requires_grad=False)  # new tensors: the
    attn.in_proj_bias = nn.Parameter(merged.bias, requires_grad=False)  # original is untouched


def adapter_names(model: nn.Module) -> List[str]:
    """Names of the adapter modules left in a model (the routed ViT adapters after a merge)."""
    return [n for n, m in model.named_modules() if isinstance(m, RepAdapter)]


@torch.no_grad()
def load_merged_state_dict(model: nn.Module, state_dict: Dict[str, Tensor],
                           strict: bool = True) -> nn.Module:
    """Reshape a freshly built LaVIN into the merged structure of ``state_dict`` and load it.

    Adapters whose tensors are absent are removed (LLM slots set to None, ViT norms unwrapped);
    bias-free Linear layers whose ``.bias`` is present gain a bias. Then the state dict is loaded
    (assigned, so a model built on the meta device gets no second copy).
    """
    keys = set(state_dict)
    for blk_name, blk in [(n, m) for n, m in model.named_modules() if hasattr(m, 'adapter_attn')]:
        for slot in ('adapter_attn', 'adapter_ffn'):
            prefix = f'{blk_name}.{slot}.'
            if getattr(blk, slot) is not None and not any(k.startswith(prefix) for k in keys):
                setattr(blk, slot, None)
    for name, m in list(model.named_modules()):
        for child_name, child in list(m.named_children()):
            full = f'{name}.{child_name}' if name else child_name
            if isinstance(child, AdaptedModule) and \
                    not any(k.startswith(full + '.adapter.') for k in keys):
                setattr(m, child_name, child.module)
            elif isinstance(child, nn.Linear) and child.bias is None and full + '.bias' in keys:
                w = child.weight
                setattr(m, child_name, nn.Linear(w.shape[1], w.shape[0], bias=True,
                                                 device=w.device, dtype=w.dtype))
    own = model.state_dict()
    sd = {}
    for k, v in state_dict.items():
        p = own.get(k)
        if p is not None:
            v = v.to(device='cpu' if p.is_meta else p.device, dtype=p.dtype)
        sd[k] = v
    model.load_state_dict(sd, strict=strict, assign=True)
    model.requires_grad_(False)
    return model

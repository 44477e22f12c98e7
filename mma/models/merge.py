"""Folding LaVIN's adapters into the frozen weights for deployment, one model per modality.

What is merged (exactly, up to float rounding):

* **LLM adapters**, routed or not. A routed adapter's weights come from the hidden state of the
  modality token, which sees only itself (LaVIN's mask, original ``lavin/model.py``): at inference
  they are a constant ``(K,)`` per modality and layer, computed here by running the LLM on the
  modality token alone.
  Each adapter folds (its ``fold(routing)``, :mod:`mma.adapters.base`) into the frozen layers its
  slot names (``AdapterSlot.folds_into``: for LLaMA's ``attn`` placement the q/k/v projections,
  which gain a bias; for ``ffn`` the two FFN input projections); an adapter in a linear slot (LoRA,
  DoRA, IA³, RoutedLoRA) into the weight of the linear it sits around.
* **Non-routed ViT adapters**: likewise into the layers their slots name (CLIP: the attention's
  packed input projection, or the MLP's first layer).

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
from typing import Dict, Iterable, List, Optional

import torch
from torch import Tensor, nn

from mma.adapters.base import adapter_fold
from mma.adapters.utils import fold_into
from mma.routers.routing import RoutingContext
from mma.slots import AdapterSlot, adapters_left

MODALITIES = {'image': True, 'text': False}


@torch.no_grad()
def llm_routing_weights(model: nn.Module, has_image: bool) -> Dict[nn.Module, Tensor]:
    """``{routed LLM adapter: (K,) weights}`` for one modality, from the modality token alone."""
    llm = model.llm
    emb = model.modality_embedding.weight[int(has_image)].to(llm.dtype)[None, None]  # (1, 1, D)
    ctx = RoutingContext(token_index=torch.zeros(1, dtype=torch.long, device=emb.device),
                         cache={})
    llm(emb, ctx=ctx)
    return {m: w[0, 0] for m, w in ctx.cache.items()}


def share_tensors_copy(model: nn.Module) -> nn.Module:
    """A copy of the module tree whose parameters and buffers are the original tensors."""
    memo = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
    return copy.deepcopy(model, memo)


@torch.no_grad()
def merge_lavin(model: nn.Module, modality: str, inplace: bool = False) -> nn.Module:
    """Fold the adapters of a LaVIN model into its frozen layers for one ``modality``.

    Args:
        model: A LaVIN model (eval semantics: dropout is ignored).
        modality: ``'image'`` (samples with an image) or ``'text'`` (text-only samples).
        inplace: Modify ``model`` itself instead of a tensor-sharing copy.

    Returns:
        The merged model: every adapter that declares an affine form for its routing, in a slot
        that names layers to fold into, is folded and taken out; the others stay (see the module
        doc).
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be 'image' or 'text', got {modality!r}")
    weights = llm_routing_weights(model, MODALITIES[modality])
    out = model if inplace else share_tensors_copy(model)
    weights = {_twin(model, out, m): w for m, w in weights.items()}
    fold_adapters(out.adapter_slots(), weights)
    return out


@torch.no_grad()
def fold_adapters(slots: Iterable[AdapterSlot],
                  weights: Optional[Dict[nn.Module, Tensor]] = None) -> None:
    """The one merge loop: each filled slot's adapter is folded as it declares (its ``fold`` for
    its routing ``weights``, :mod:`mma.adapters.base`: an affine map before the slot's layers, or
    new weights for the linear it sits around) into the layers the slot names, and the slot is
    emptied. Adapters that declare no fold stay (a prefix; routing that changes per token)."""
    weights = weights or {}
    for slot in slots:
        adapter = slot.adapter
        if adapter is None or not slot.folds_into:
            continue
        fold = adapter_fold(adapter, weights.get(adapter))
        if fold is None:
            continue  # e.g. routed per token (ViT): no single linear map reproduces it
        for path in slot.folds_into:
            fold_into(slot.parent, path, fold)
        slot.remove()


def _twin(src: nn.Module, dst: nn.Module, module: nn.Module) -> nn.Module:
    """The module of ``dst`` at the path ``module`` has in ``src``."""
    for name, m in src.named_modules():
        if m is module:
            return dst.get_submodule(name)
    raise KeyError('module not found in the source model')


def adapter_names(model: nn.Module) -> List[str]:
    """Names of the adapter modules left in a model (the routed ViT adapters after a merge)."""
    return [path for path, _ in adapters_left(model, model.adapter_slots())]


@torch.no_grad()
def load_merged_state_dict(model: nn.Module, state_dict: Dict[str, Tensor],
                           strict: bool = True) -> nn.Module:
    """Reshape a freshly built LaVIN into the merged structure of ``state_dict`` and load it.

    Adapters whose tensors are absent are taken out of their slots; bias-free Linear layers whose
    ``.bias`` is present gain a bias. Then the state dict is loaded (assigned, so a model built on
    the meta device gets no second copy).
    """
    keys = set(state_dict)
    paths = {id(m): n for n, m in model.named_modules()}
    for slot in model.adapter_slots():
        if slot.adapter is not None:
            prefix = paths[id(slot.adapter)] + '.'
            if not any(k.startswith(prefix) for k in keys):
                slot.remove()
    for name, m in list(model.named_modules()):
        for child_name, child in list(m.named_children()):
            full = f'{name}.{child_name}' if name else child_name
            if isinstance(child, nn.Linear) and child.bias is None and full + '.bias' in keys:
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

"""The modality token outside the sequence: its router weights from a run of its own.

LaVIN puts the modality token at position 0 of every row (:mod:`mma.sequence`); it attends only
to itself and no later position attends to it, so its hidden state at each block, the routers'
input, is that of the token run alone through the LLM. A model whose token sequence must stay
another model's (LLaVA-1.5: same ids, same positions) computes it so, once per modality, and hands
the weights to the routed adapters through the :class:`~mma.routers.routing.RoutingContext` cache
(``LaVIN(modality_in_sequence=False)``). The cost: one extra one-token LLM pass for each of the two
modalities per forward (2 of the B·T positions of a batch); the result is the same up to rounding.
"""
from typing import Dict

import torch
from torch import Tensor, nn

from mma.routers.routing import RoutingContext


def modality_routing(llm: nn.Module, modality_embedding: nn.Embedding,
                     has_image: Tensor) -> Dict[nn.Module, Tensor]:
    """``{routed LLM adapter: (B, 1, K) weights}`` of each row's modality (``has_image`` (B,)),
    from the two modality embeddings run alone through ``llm`` (differentiable: the embeddings
    and routers train through it)."""
    emb = modality_embedding.weight.to(llm.dtype)[:, None]  # (2, 1, D): text, image
    ctx = RoutingContext(token_index=torch.zeros(2, dtype=torch.long, device=emb.device),
                         cache={})
    llm(emb, ctx=ctx)
    rows = has_image.bool().long().to(emb.device)
    return {m: w[rows] for m, w in ctx.cache.items()}


def context_routing(llm: nn.Module, modality_embedding: nn.Embedding,
                    has_image: Tensor) -> RoutingContext:
    """A routing context whose routed LLM adapters read the weights of :func:`modality_routing`
    (no routing token in the sequence)."""
    return RoutingContext(cache=modality_routing(llm, modality_embedding, has_image))

"""The LLM backbone contract: what LaVIN, generation, merging and the engine ask of a language model.

A backbone is an ``nn.Module`` registered in :data:`mma.registry.LLMS`. Everything outside
``mma/llms/`` talks to it only through these members (:class:`LLMBackbone` documents them and gives
the defaults that follow from the others):

=============================  ==================================================================
``dim``, ``vocab_size``         hidden width; rows of the token embedding (= logits width)
``num_layers``                  the number of blocks
``max_seq_len``                 the longest sequence (positions) it supports
``dtype``                       dtype of its embeddings (what :meth:`forward` expects)
``embed(input_ids)``            ``(B, T)`` ids -> ``(B, T, dim)`` token embeddings
``forward(embeds, positions,``  run the blocks on ``(B, T, dim)`` embeddings: ``positions`` (B, T)
``mask, ctx, cache)``           ints (default ``cache.length + arange(T)``), ``mask`` bool
                                ``(B or 1, 1, T, S)`` True = may attend (None = causal), ``ctx``
                                the routing context handed to every adapter, ``cache`` a
                                :class:`KVCache` to read and extend; returns ``(B, T, dim)``
                                hidden states ready for the head
``head(hidden)``                hidden states -> logits ``(..., vocab_size)``
``logits(input_ids)``           plain causal LM: ``(B, T)`` ids -> ``(B, T, vocab_size)`` logits
``new_cache(batch, max_len)``   an empty :class:`KVCache` for generation
``adapter_slots(placement)``    :class:`~mma.slots.AdapterSlot` s for a placement name, each naming
                                the frozen linear layers an adapter in it folds into
``quantizable_linears()``       ``(parent, name)`` of the frozen linears low-bit quantisation
                                replaces
``weights_path``                the weights folder :meth:`load_pretrained` reads (None: random)
``load_pretrained()``           read the weights (never at construction)
=============================  ==================================================================

The routing context is opaque to the backbone: it only passes ``ctx`` to the adapters in its slots.
The KV cache holds keys and values only.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from mma.slots import AdapterSlot


class KVCache:
    """A preallocated key/value cache for all layers; attached for inference only.

    Columns ``[0, length)`` are filled. A forward call writes its T new columns at ``length`` in
    every layer (:meth:`update`); the backbone advances ``length`` once all layers have run.
    """

    def __init__(self, n_layers: int, batch_size: int, max_len: int, n_kv_heads: int,
                 head_dim: int, dtype: torch.dtype, device: torch.device):
        shape = (n_layers, batch_size, n_kv_heads, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.length = 0

    @property
    def max_len(self) -> int:
        return self.k.shape[3]

    def update(self, layer: int, k: Tensor, v: Tensor) -> Tuple[Tensor, Tensor]:
        """Write (B, Hkv, T, Dh) at the current length; return the filled (B, Hkv, S, Dh)."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f'KVCache: {end} positions exceed its max_len {self.max_len}')
        self.k[layer, :, :, start:end] = k
        self.v[layer, :, :, start:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


class LLMBackbone(nn.Module):
    """Base class documenting the backbone contract (see the module docstring)."""

    dim: int
    vocab_size: int
    max_seq_len: int
    num_layers: int

    @property
    def dtype(self) -> torch.dtype:
        raise NotImplementedError

    def embed(self, input_ids: Tensor) -> Tensor:
        raise NotImplementedError

    def head(self, hidden: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, embeds: Tensor, positions: Optional[Tensor] = None,
                mask: Optional[Tensor] = None, ctx=None,
                cache: Optional[KVCache] = None) -> Tensor:
        raise NotImplementedError

    def logits(self, input_ids: Tensor) -> Tensor:
        """``(B, T)`` token ids -> ``(B, T, vocab_size)`` causal-LM logits (no adapters' routing
        input: routed adapters route each token by itself). The call to compare with another
        implementation of the same weights."""
        return self.head(self(self.embed(input_ids)))

    def new_cache(self, batch_size: int, max_len: int, dtype: Optional[torch.dtype] = None,
                  device: Optional[torch.device] = None) -> KVCache:
        raise NotImplementedError

    def adapter_slots(self, placement: str) -> List[AdapterSlot]:
        raise NotImplementedError

    def quantizable_linears(self) -> List[Tuple[nn.Module, str]]:
        return []

    @property
    def weights_path(self) -> Optional[str]:
        return None

    def load_pretrained(self) -> None:
        """Read :attr:`weights_path` (if any) into the backbone."""

"""Batched generation with a preallocated KV cache: ``prefill``, ``decode_one_token``, ``generate``.

Prompts of different lengths are left-aligned (padded on the left) so that every sample's last
prompt token sits in the last column; each sample keeps its own rotary positions (its first real
token is position 0) and never attends to padding, so a sample gets the same tokens in any batch.
Column ``pad[i]`` of sample ``i`` holds its modality token: only the routers read it, no later
position attends to it (:func:`mma.models.masks.modality_mask`, the training rule too). The router
weights are computed at prefill and kept in the generation's routing context, which this loop owns;
the KV cache holds keys and values only. The LLM is used through its contract
(:class:`mma.llms.base.LLMBackbone`): ``embed``, ``forward``, ``head``, ``new_cache``.
"""
import re
from dataclasses import dataclass, field
from typing import Callable, Collection, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from mma.llms.base import KVCache, LLMBackbone
from mma.routers.routing import RoutingContext

from .masks import modality_mask, positions

#: The LaVIN answer pattern (reference eval code); ``.`` is any character, as there.
ANSWER_PATTERN = r'The answer is ([A-Z]).'


@dataclass
class GenerationConfig:
    """How to decode.

    Args:
        max_new_tokens: Upper bound of generated tokens per sample.
        temperature: 0 = greedy; otherwise softmax temperature of the sampler.
        top_p: Nucleus sampling mass (used when ``temperature > 0``).
        stop_at_eos: Stop a sample at the EOS token (not included in its output).
        stop_strings: Stop a sample once its text contains one of these; the text is cut before it.
            A special token's text (``<|eot_id|>``) stops at that token (decoded text skips it).
        stop_pattern: A regex; a sample stops once its text matches (text kept through the match).
            :data:`ANSWER_PATTERN` gives the answer-aware early stop of multiple-choice evaluation.
        seed: Seed of the sampling generator (None: torch's global RNG).
    """
    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    stop_at_eos: bool = True
    stop_strings: Sequence[str] = ()
    stop_pattern: Optional[str] = None
    seed: Optional[int] = None


@dataclass
class GenerationOutput:
    """Per-sample results of :func:`generate`.

    ``tokens``: generated ids (EOS excluded); ``texts``: decoded texts after stop handling;
    ``num_generated``: model-produced tokens per sample (EOS included); ``steps``: decode steps
    of the batch; ``logits``: per step (B, V) logits when asked for; ``routing``: the router
    weights of the generation (routed adapter -> (B, 1, K)), from its routing context. The KV cache
    is not kept: callers that hold many outputs (evaluation) would hold every batch's
    keys and values.
    """
    tokens: List[List[int]]
    texts: List[str]
    num_generated: List[int]
    steps: int
    logits: List[Tensor] = field(default_factory=list)
    routing: Dict[nn.Module, Tensor] = field(default_factory=dict)


def left_align(embeds: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
    """Move right-padded (B, T, D) rows so they end in the last column.

    Returns the left-padded embeddings and ``pad`` (B,): the count of padding columns per row.
    """
    b, t, _ = embeds.shape
    pad = t - lengths.long()
    src = (torch.arange(t, device=embeds.device)[None] - pad[:, None]) % t  # (B, T)
    return embeds.gather(1, src[..., None].expand_as(embeds)), pad


def routing_context(pad: Tensor) -> RoutingContext:
    """The routing context of one generation: routers read each row's modality token (column
    ``pad``) at prefill; their weights are kept in the context for the decode steps."""
    return RoutingContext(token_index=pad, cache={})


def prefill(llm: LLMBackbone, embeds: Tensor, pad: Tensor, cache: KVCache,
            ctx: RoutingContext, modality_col: Optional[Tensor] = None) -> Tensor:
    """Run the left-aligned prompt (B, T, D) into an empty cache; returns last logits (B, V).

    Router weights are computed here from each row's modality token and kept in ``ctx``.
    ``modality_col``: the modality token's column (default ``pad``; ``pad - 1``, before the row,
    for rows without one, whose routing weights ``ctx`` already holds).
    """
    if cache.length:
        raise ValueError('prefill needs an empty KVCache')
    b, t, _ = embeds.shape
    mcol = pad if modality_col is None else modality_col
    hidden = llm(embeds, positions(pad, 0, t), modality_mask(mcol, 0, t, t), ctx, cache)
    return llm.head(hidden[:, -1]).float()


def decode_one_token(llm: LLMBackbone, token: Tensor, pad: Tensor, cache: KVCache,
                     ctx: RoutingContext, modality_col: Optional[Tensor] = None) -> Tensor:
    """Feed one token per row (B,) after the cached columns; returns its logits (B, V). The
    router weights come from ``ctx`` (kept at prefill); ``modality_col`` as in :func:`prefill`."""
    start = cache.length
    embeds = llm.embed(token[:, None])  # (B, 1, D)
    mcol = pad if modality_col is None else modality_col
    hidden = llm(embeds, positions(pad, start, 1), modality_mask(mcol, start, 1, start + 1), ctx,
                 cache)
    return llm.head(hidden[:, -1]).float()


def sample_next(logits: Tensor, temperature: float = 0.0, top_p: float = 1.0,
                generator: Optional[torch.Generator] = None) -> Tensor:
    """Greedy (``temperature == 0``) or temperature + nucleus sampling of (B, V) logits."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    sorted_p, order = probs.sort(dim=-1, descending=True)
    sorted_p = sorted_p.masked_fill(sorted_p.cumsum(-1) - sorted_p > top_p, 0.0)
    sorted_p = sorted_p / sorted_p.sum(-1, keepdim=True)
    pick = torch.multinomial(sorted_p, 1, generator=generator)  # (B, 1)
    return order.gather(-1, pick).squeeze(-1)


def stop_ids(tokenizer) -> Collection[int]:
    """Every id that ends decoding: the tokenizer's ``stop_ids`` (an HF folder's
    ``generation_config.json`` list and ``tokenizer_config.json`` EOS), else its ``eos_id``."""
    ids = getattr(tokenizer, 'stop_ids', None)
    if ids:
        return frozenset(ids)
    return frozenset() if tokenizer.eos_id is None else frozenset([tokenizer.eos_id])


def _special_stops(cfg: GenerationConfig, encode, decode) -> Collection[int]:
    """Ids of the stop strings that are one special token each (decoded text never shows
    them, so they stop by id)."""
    out = set()
    for s in cfg.stop_strings:
        ids = encode(s) if encode is not None and decode is not None and s else []
        if len(ids) == 1 and decode(ids) == '':
            out.add(ids[0])
    return out


def _stop_text(text: str, cfg: GenerationConfig) -> Optional[str]:
    """The final text if ``text`` triggers a stop string or the stop pattern, else None."""
    cuts = [text.find(s) for s in cfg.stop_strings if s and s in text]
    if cuts:
        return text[:min(cuts)]
    if cfg.stop_pattern is not None:
        m = re.search(cfg.stop_pattern, text)
        if m:
            return text[:m.end()]
    return None


@torch.inference_mode()
def generate(llm: LLMBackbone, embeds: Tensor, lengths: Tensor, cfg: GenerationConfig,
             decode: Optional[Callable[[List[int]], str]] = None,
             eos_id: Union[None, int, Collection[int]] = None,
             on_text: Optional[Callable[[int, str], None]] = None,
             return_logits: bool = False, routing: Optional[Dict[nn.Module, Tensor]] = None,
             encode: Optional[Callable[[str], List[int]]] = None) -> GenerationOutput:
    """Generate continuations of a batch of assembled prompts.

    Args:
        llm: The LLM backbone.
        embeds: (B, T, D) right-padded prompt embeddings whose column 0 is the modality token
            (none with ``routing``).
        lengths: (B,) real length of each row of ``embeds``.
        cfg: Decoding settings.
        decode: ids -> text (the tokenizer's); needed for texts, stop strings and patterns.
        eos_id: The EOS id, or every stop id of the model (``cfg.stop_at_eos``).
        on_text: Streaming callback ``(sample index, new text)`` called as text appears.
        return_logits: Keep each step's (B, V) logits (tests).
        routing: Router weights computed beforehand (routed adapter -> (B, 1, K),
            :func:`mma.models.modality.modality_routing`): the rows hold no modality token.
        encode: text -> ids without BOS; stop strings that are one special token stop by id.
    """
    b = embeds.shape[0]
    embeds, pad = left_align(embeds, lengths)
    cache = llm.new_cache(b, embeds.shape[1] + cfg.max_new_tokens, dtype=embeds.dtype,
                          device=embeds.device)
    gen = None
    if cfg.seed is not None:
        gen = torch.Generator(device=embeds.device).manual_seed(cfg.seed)
    tokens: List[List[int]] = [[] for _ in range(b)]
    texts = [''] * b
    final: List[Optional[str]] = [None] * b
    counts = [0] * b
    all_logits = []
    ctx, mcol = routing_context(pad), None
    if routing is not None:  # no modality column: a virtual one before each row
        ctx, mcol = RoutingContext(cache=dict(routing)), pad - 1
    stops = {eos_id} if isinstance(eos_id, int) else set(eos_id or ())
    stops = stops if cfg.stop_at_eos else set()
    stops |= _special_stops(cfg, encode, decode)
    logits = prefill(llm, embeds, pad, cache, ctx, mcol)
    steps = 0
    for step in range(cfg.max_new_tokens):
        if return_logits:
            all_logits.append(logits)
        nxt = sample_next(logits, cfg.temperature, cfg.top_p, gen)
        steps += 1
        for i, tok in enumerate(nxt.tolist()):
            if final[i] is not None:
                continue
            counts[i] += 1
            if tok in stops:
                final[i] = texts[i]
                continue
            tokens[i].append(tok)
            if decode is None:
                continue
            text = decode(tokens[i])
            stopped = _stop_text(text, cfg)
            shown = stopped if stopped is not None else text
            if on_text is not None and len(shown) > len(texts[i]) and shown.startswith(texts[i]):
                on_text(i, shown[len(texts[i]):])
            texts[i] = shown
            if stopped is not None:
                final[i] = stopped
        if all(f is not None for f in final) or step == cfg.max_new_tokens - 1:
            break
        logits = decode_one_token(llm, nxt, pad, cache, ctx, mcol)
    return GenerationOutput(tokens=tokens, texts=[f if f is not None else t
                                                  for f, t in zip(final, texts)],
                            num_generated=counts, steps=steps, logits=all_logits,
                            routing=dict(ctx.cache))

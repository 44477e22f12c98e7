"""Router weights of the LLM's routed adapters for image and text-only input (paper's view)."""
import re
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from mma.models.modality import context_routing
from mma.routers import RoutingContext

_LAYER = re.compile(r'layers\.(\d+)\.(\w+)$')


@torch.no_grad()
def router_weights(model) -> Dict[str, Tensor]:
    """Each routed LLM adapter's expert weights for an image and a text-only sample.

    The LLM routers read the hidden state of the modality token (position 0), which attends only
    to itself (``LaVIN.attention_mask``): its value, and so every router weight, depends on the
    modality alone. One image and one text-only sequence of one token give the weights for all
    inputs (``tests/models/test_lavin.py`` checks this invariance).

    Args:
        model: A :class:`~mma.models.LaVIN` with routed LLM adapters.

    Returns:
        ``{adapter name: (2, K) weights}``, row 0 image, row 1 text-only, in layer order
        (e.g. ``layers.0.adapter_attn``).
    """
    was_training = model.training
    model.eval()
    try:
        ids = torch.zeros(2, 1, dtype=torch.long, device=model.modality_embedding.weight.device)
        seq = model.assemble(ids, torch.tensor([True, False], device=ids.device))
        ctx = RoutingContext(token_index=torch.zeros(2, dtype=torch.long, device=ids.device),
                             cache={})
        if model.modality_positions:
            model.hidden_states(seq['embeds'], ctx)
        else:  # the modality token is not in the sequence: the routers read it run alone
            ctx = context_routing(model.llm, model.modality_embedding, seq['has_image'])
    finally:
        model.train(was_training)
    out = {name: w[:, 0] for name, w in llm_routing(model, ctx.cache).items()}
    if not out:
        raise ValueError('the model has no routed LLM adapters (llm_adapter.router is not set)')
    return out


def llm_routing(model, routing: Dict) -> Dict[str, Tensor]:
    """Name the LLM's entries of a routing cache, in layer order.

    Args:
        model: The :class:`~mma.models.LaVIN` whose LLM holds the routed adapters.
        routing: ``{routed module: weights}``, e.g. ``GenerationOutput.routing`` or a
            ``RoutingContext.cache``; entries of modules outside the LLM are dropped.

    Returns:
        ``{adapter name (e.g. 'layers.0.adapter_attn'): weights as float32 on the CPU}``.
    """
    names = {m: n for n, m in model.llm.named_modules()}
    out = {names[m]: w.float().cpu() for m, w in routing.items() if m in names}
    return dict(sorted(out.items(), key=lambda kv: layer_and_slot(kv[0])))


def layer_and_slot(name: str) -> Tuple[int, str]:
    """``'layers.3.adapter_attn'`` -> ``(3, 'adapter_attn')``; ``(-1, name)`` if no layer."""
    m = _LAYER.search(name)
    return (int(m.group(1)), m.group(2)) if m else (-1, name)


def plot_router_weights(weights: Dict[str, Tensor], out: Optional[str] = None,
                        title: Optional[str] = None):
    """Bar chart per expert: each layer's weight for image vs text-only input.

    Args:
        weights: As returned by :func:`router_weights`.
        out: Save the figure here (PNG) if given.
        title: Figure title.

    Returns:
        The matplotlib ``Figure``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    slots: Dict[str, Dict[int, Tensor]] = {}  # adapter slot -> layer -> (2, K)
    for name, w in weights.items():
        m = _LAYER.search(name)
        layer, slot = (int(m.group(1)), m.group(2)) if m else (len(slots), name)
        slots.setdefault(slot, {})[layer] = w
    num_experts = next(iter(weights.values())).shape[-1]
    fig = Figure(figsize=(max(6.4, 0.45 * max(len(v) for v in slots.values()) + 2),
                          2.4 * num_experts * len(slots)), layout='constrained')
    FigureCanvasAgg(fig)
    axes = fig.subplots(num_experts * len(slots), 1, squeeze=False)[:, 0]
    ax_iter = iter(axes)
    for slot, layers in slots.items():
        xs = sorted(layers)
        w = torch.stack([layers[i] for i in xs]).tolist()  # (L, 2, K)
        for k in range(num_experts):
            ax = next(ax_iter)
            ax.bar([x - 0.2 for x in xs], [wl[0][k] for wl in w], width=0.4,
                   label='image-text', color='tab:blue')
            ax.bar([x + 0.2 for x in xs], [wl[1][k] for wl in w], width=0.4,
                   label='text-only', color='tab:orange')
            ax.set_ylim(0, 1)
            ax.set_xticks(xs, [str(i) for i in xs])
            ax.set_ylabel(f'expert {k} weight')
            ax.set_title(f'{slot}: expert {k}', fontsize='medium')
            ax.grid(axis='y', alpha=0.3)
    axes[0].legend(fontsize='small', ncols=2)
    axes[-1].set_xlabel('LLM layer')
    if title:
        fig.suptitle(title)
    if out is not None:
        fig.savefig(out, dpi=120)
    return fig

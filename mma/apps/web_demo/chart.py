"""The router chart of the page: one group of bars per LLM layer, one bar per expert weight.

Plain HTML with inline styles, so it renders offline in any gradio version and a browser test can
count its parts (``.mma-layer`` groups, ``.mma-bar`` bars, ``data-*`` attributes).
"""
import html
from typing import Dict, List, Optional

from mma.apps.visualization.routing import layer_and_slot

#: Bar colours of experts 0, 1, ... (matplotlib's tab10, as in tools/plot_routing.py).
COLOURS = ('#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b')


def group_by_layer(routing: Dict[str, List[float]]) -> Dict[int, Dict[str, List[float]]]:
    """``{'layers.3.adapter_attn': w}`` -> ``{3: {'adapter_attn': w}}``, layers in order."""
    layers: Dict[int, Dict[str, List[float]]] = {}
    for name, weights in routing.items():
        layer, slot = layer_and_slot(name)
        layers.setdefault(layer, {})[slot] = list(weights)
    return dict(sorted(layers.items()))


def router_chart_html(routing: Optional[Dict[str, List[float]]], has_image: bool = False) -> str:
    """The chart for one answer's router weights (an explanatory line when there are none)."""
    if not routing:
        return ('<div class="mma-router-chart" data-layers="0"><em>Router weights appear here '
                'after an answer (models with routed adapters only).</em></div>')
    layers = group_by_layer(routing)
    num_experts = max(len(w) for slots in layers.values() for w in slots.values())
    groups = []
    for layer, slots in layers.items():
        bars = []
        for slot, weights in slots.items():
            for k, w in enumerate(weights):
                tip = html.escape(f'layer {layer} {slot} expert {k}: {w:.3f}')
                bars.append(
                    f'<div class="mma-bar" data-slot="{html.escape(slot)}" data-expert="{k}" '
                    f'data-weight="{w:.6f}" title="{tip}" style="width:14px;height:{100 * w:.1f}%;'
                    f'background:{COLOURS[k % len(COLOURS)]};margin:0 1px"></div>')
        groups.append(
            f'<div class="mma-layer" data-layer="{layer}" style="display:flex;flex-direction:'
            'column;align-items:center;margin:0 6px">'
            '<div style="display:flex;align-items:flex-end;height:90px;border-bottom:1px solid '
            f'#888">{"".join(bars)}</div><div style="font-size:12px">{layer}</div></div>')
    legend = ' '.join(f'<span style="color:{COLOURS[k % len(COLOURS)]}">&#9632;</span> expert {k}'
                      for k in range(num_experts))
    modality = 'image-text' if has_image else 'text-only'
    return (f'<div class="mma-router-chart" data-layers="{len(layers)}">'
            f'<div style="font-size:13px">Router weights per LLM layer for this '
            f'{modality} input &nbsp; {legend}</div>'
            f'<div style="display:flex;align-items:flex-end;padding:4px">{"".join(groups)}</div>'
            '<div style="font-size:12px">LLM layer</div></div>')

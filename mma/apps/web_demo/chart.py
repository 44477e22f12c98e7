"""The router chart of the page: one group of bars per LLM layer, one bar per expert weight,
each bar labelled with its value and coloured by the path it carries (image or text), on a
0-1 y-axis.

Plain HTML with inline styles, so it renders offline in any gradio version and a browser test can
read its parts (``.mma-layer`` groups, ``.mma-bar`` bars with ``data-*`` attributes and a
``.mma-value`` label, ``.mma-legend`` entries, ``.mma-y-axis`` ticks).
"""
import html
from typing import Dict, List, Optional

from mma.apps.visualization.routing import layer_and_slot

#: Bar colours of the image path, the text path and other experts (matplotlib's tab10).
PATH_COLOURS = {'image path': '#1f77b4', 'text path': '#ff7f0e'}
OTHER_COLOURS = ('#2ca02c', '#d62728', '#9467bd', '#8c564b')
#: Height of the bars' area in px (a weight of 1 fills it).
PLOT_HEIGHT = 160


def group_by_layer(routing: Dict[str, List[float]]) -> Dict[int, Dict[str, List[float]]]:
    """``{'layers.3.adapter_attn': w}`` -> ``{3: {'adapter_attn': w}}``, layers in order."""
    layers: Dict[int, Dict[str, List[float]]] = {}
    for name, weights in routing.items():
        layer, slot = layer_and_slot(name)
        layers.setdefault(layer, {})[slot] = list(weights)
    return dict(sorted(layers.items()))


def _colour(label: str) -> str:
    if label in PATH_COLOURS:
        return PATH_COLOURS[label]
    k = int(label.rsplit(' ', 1)[-1]) if label[-1:].isdigit() else 0
    return OTHER_COLOURS[k % len(OTHER_COLOURS)]


def _bar(layer: int, slot: str, label: str, w: float) -> str:
    tip = html.escape(f'layer {layer} {slot}, {label}: {w:.3f}')
    return (f'<div class="mma-bar" data-slot="{html.escape(slot)}" data-path="{label}" '
            f'data-weight="{w:.6f}" title="{tip}" style="position:relative;width:26px;'
            f'height:{100 * w:.1f}%;background:{_colour(label)};margin:0 1px">'
            '<span class="mma-value" style="position:absolute;bottom:100%;left:50%;'
            f'transform:translateX(-50%);font-size:10px;line-height:12px">{w:.2f}</span></div>')


def _y_axis() -> str:
    ticks = ''.join(
        f'<span style="position:absolute;right:4px;bottom:{100 * v:.0f}%;transform:'
        f'translateY(50%);font-size:11px" data-tick="{v}">{v:g}</span>'
        for v in (1, 0.75, 0.5, 0.25, 0))
    return (f'<div class="mma-y-axis" style="position:relative;height:{PLOT_HEIGHT}px;'
            f'width:40px;border-right:1px solid #888;margin-bottom:17px">{ticks}</div>')


def router_chart_html(routing: Optional[Dict[str, List[float]]], has_image: bool = False,
                      paths: Optional[Dict[str, List[str]]] = None) -> str:
    """The chart for one answer's router weights (an explanatory line when there are none).

    Args:
        routing: ``{adapter name: weights over the K experts}`` of one answer.
        has_image: Whether the answer's input had an image (named in the title).
        paths: ``{adapter name: label per expert}`` (``'image path'``, ``'text path'``), as
            :func:`~mma.apps.web_demo.session.router_paths` gives; ``expert k`` without.
    """
    if not routing:
        return ('<div class="mma-router-chart" data-layers="0"><em>Router weights appear here '
                'after an answer (models with routed adapters only).</em></div>')
    layers = group_by_layer(routing)
    labels_seen: List[str] = []
    groups = []
    for layer, slots in layers.items():
        bars = []
        for slot, weights in slots.items():
            labels = (paths or {}).get(f'layers.{layer}.{slot}') or \
                [f'expert {k}' for k in range(len(weights))]
            for label, w in zip(labels, weights):
                labels_seen += [label] * (label not in labels_seen)
                bars.append(_bar(layer, slot, label, w))
        groups.append(
            f'<div class="mma-layer" data-layer="{layer}" style="display:flex;flex-direction:'
            'column;align-items:center;margin:0 5px">'
            f'<div style="display:flex;align-items:flex-end;height:{PLOT_HEIGHT}px;'
            f'border-bottom:1px solid #888">{"".join(bars)}</div>'
            f'<div style="font-size:12px;line-height:16px">{layer}</div></div>')
    order = sorted(labels_seen, key=lambda s: (s not in PATH_COLOURS, s))
    legend = ' &nbsp; '.join(
        f'<span class="mma-legend" data-path="{label}"><span style="color:{_colour(label)}">'
        f'&#9632;</span> {label}</span>' for label in order)
    modality = 'image-text' if has_image else 'text-only'
    return (f'<div class="mma-router-chart" data-layers="{len(layers)}">'
            f'<div style="font-size:13px">Router weights per LLM layer for this {modality} '
            'input: how much each adapter path contributes (the weights of a layer sum to 1). '
            'The image path is the expert whose weight rises with an image, the text path the '
            f'one that falls.</div><div style="font-size:13px;margin:4px 0">{legend}</div>'
            '<div style="display:flex;align-items:flex-end;padding:14px 4px 4px 0">'
            f'<div style="font-size:11px;writing-mode:vertical-rl;transform:rotate(180deg);'
            f'margin-bottom:17px">router weight</div>{_y_axis()}{"".join(groups)}</div>'
            '<div style="font-size:12px;margin-left:52px">LLM layer</div></div>')

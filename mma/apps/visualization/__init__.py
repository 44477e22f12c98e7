"""Plots of training runs and of the modality routers (matplotlib: ``pip install 'mma[plot]'``).

``tools/analyze_logs.py`` and ``tools/plot_routing.py`` are thin command lines over this package.
"""
from .logs import find_scalar_files, load_scalars, plot_curves
from .routing import layer_and_slot, llm_routing, plot_router_weights, router_weights

__all__ = ['find_scalar_files', 'layer_and_slot', 'llm_routing', 'load_scalars', 'plot_curves',
           'plot_router_weights', 'router_weights']

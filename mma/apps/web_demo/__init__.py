"""A browser demo over a trained model (gradio: ``pip install 'mma[web]'``).

:mod:`~mma.apps.web_demo.session` is the logic (no gradio import), :mod:`.chart` the router chart,
:mod:`.ui` the gradio page; ``tools/web_demo.py`` is the command line.
"""
from .chart import group_by_layer, router_chart_html
from .loading import load_web_demo
from .session import DemoError, Reply, WebDemo, parse_choices

__all__ = ['DemoError', 'Reply', 'WebDemo', 'group_by_layer', 'load_web_demo', 'parse_choices',
           'router_chart_html']

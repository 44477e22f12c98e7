"""A browser demo over a trained model (gradio: ``pip install 'mma[web]'``).

:mod:`~mma.apps.web_demo.session` is the logic (no gradio import), :mod:`.images` the upload
checks and previews, :mod:`.examples` the page's held-out examples, :mod:`.chart` the router
chart, :mod:`.ui` the gradio page; ``tools/web_demo.py`` is the command line.
"""
from .chart import group_by_layer, router_chart_html
from .errors import DemoError
from .examples import held_out_examples
from .images import MAX_PIXELS, check_upload, open_upload
from .loading import load_web_demo
from .session import Reply, WebDemo, parse_choices, router_paths

__all__ = ['DemoError', 'MAX_PIXELS', 'Reply', 'WebDemo', 'check_upload', 'group_by_layer',
           'held_out_examples', 'load_web_demo', 'open_upload', 'parse_choices',
           'router_chart_html', 'router_paths']

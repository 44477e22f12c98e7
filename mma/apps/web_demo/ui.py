"""The gradio page of the web demo: inputs on the left; streamed answer, status, router chart and
decoding settings on the right.

Offline by construction: no share link, analytics off, the default theme's fonts are served by
gradio itself (``tests/apps/web_demo/test_browser.py`` checks that the page requests nothing
from another host). Requests go through gradio's queue one at a time.
"""
import html
import inspect
import itertools
import os
from typing import Iterator, Optional, Tuple

from .chart import router_chart_html
from .session import Reply, WebDemo, parse_choices

os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')

#: The demo's image question (``mma.apps.demo.synthetic``), as a starting example.
EXAMPLE_QUESTION = 'What colour is the shape in the picture?'
EXAMPLE_CHOICES = 'red\ngreen\nblue\nyellow'


def _status(reply: Reply, request: int) -> str:
    """The status line; ``data-request`` numbers the requests, so a reader (the browser test)
    tells this request's final state from the previous one's."""
    if reply.error:
        return f'<div class="mma-error" data-request="{request}" data-done="1" ' \
               f'style="color:#b00020"><b>Error:</b> {html.escape(reply.error)}</div>'
    state = 'done' if reply.done else 'generating…'
    seen = 'image + text' if reply.has_image else 'text only'
    notes = ''.join(f'<br>{html.escape(n)}' for n in reply.notes)
    return f'<div class="mma-status" data-request="{request}" data-done="{int(reply.done)}">' \
           f'{state} ({seen}){notes}</div>'


def decoding_markdown(demo: WebDemo) -> str:
    """The decoding settings line shown under the answer."""
    s = demo.decoding_settings()
    mode = 'greedy' if s['temperature'] <= 0 else \
        f'temperature {s["temperature"]}, top-p {s["top_p"]}, seed {s["seed"]}'
    stops = [f'stop pattern `{s["stop_pattern"]}`'] if s['stop_pattern'] else []
    stops += [f'stop string `{t!r}`' for t in s['stop_strings']]
    stops += ['EOS'] if s['stop_at_eos'] else []
    return (f'**Decoding** (the config\'s `generation_cfg`, as `tools/test.py`): {mode}, at most '
            f'{s["max_new_tokens"]} new tokens, KV cache; stops at {", ".join(stops) or "nothing"}.'
            f' Prompt format with choices: `{demo.prompt_format}`.')


def respond(demo: Optional[WebDemo], load_error: Optional[str], image: Optional[str],
            question: str, context: str, choices: str, text_only: bool,
            request: int = 0) -> Iterator[Tuple[str, str, str]]:
    """The event handler: (answer, status, chart) updates for request number ``request``."""
    if demo is None:
        yield '', _status(Reply(error=load_error or 'no model is loaded', done=True), request), ''
        return
    reply = Reply()
    for reply in demo.stream(question, parse_choices(choices), context, image, text_only):
        chart = router_chart_html(reply.routing, reply.has_image) if reply.done else ''
        yield reply.text, _status(reply, request), chart


def preview_image(path: Optional[str]):
    """The uploaded picture for the page (None when there is none or it cannot be read: the
    answer then reports why)."""
    from PIL import Image

    from mma.datasets import read_rgb
    try:
        img = read_rgb(path) if path else None
    except (OSError, ValueError):
        return None
    if img is not None and max(img.size) < 128:  # tiny demo pictures: enlarge, pixels kept
        factor = -(-128 // max(img.size))
        img = img.resize((img.width * factor, img.height * factor), Image.NEAREST)
    return img


def _no_share_button(component) -> dict:
    """Keyword arguments that hide a component's share button (which uploads to the Hugging
    Face hub): ``buttons=`` in gradio 6, ``show_share_button=`` before."""
    params = inspect.signature(component.__init__).parameters
    if 'buttons' in params:
        return dict(buttons=['download', 'fullscreen'])
    if 'show_share_button' in params:
        return dict(show_share_button=False)
    return {}


def build_app(demo: Optional[WebDemo], load_error: Optional[str] = None,
              title: str = 'mma web demo'):
    """The gradio ``Blocks`` of the page, queued (one generation at a time).

    Args:
        demo: The loaded model; None when loading failed (the page then shows ``load_error``
            and every request answers with it).
        load_error: Why no model is loaded.
        title: Page title.
    """
    import gradio as gr
    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(f'# {html.escape(title)}\nAsk about an image (or none). The answer streams '
                    'from the model; the chart shows how its modality routers weighted the '
                    'adapters of each LLM layer for your input.')
        if load_error:
            gr.HTML(f'<div class="mma-error" id="load-error" style="color:#b00020"><b>Error:</b> '
                    f'{html.escape(load_error)}</div>')
        with gr.Row():
            with gr.Column():
                image = gr.File(label='Image (optional: PNG, JPEG, ...)', type='filepath',
                                elem_id='image')
                preview = gr.Image(label='The image as read', type='pil', interactive=False,
                                   height=160, elem_id='preview', **_no_share_button(gr.Image))
                question = gr.Textbox(label='Question', value=EXAMPLE_QUESTION,
                                      elem_id='question')
                context = gr.Textbox(label='Context (optional)', elem_id='context')
                choices = gr.Textbox(label='Choices (optional, one per line: ScienceQA format)',
                                     value=EXAMPLE_CHOICES, lines=4, elem_id='choices')
                text_only = gr.Checkbox(label='Text-only: answer without the image',
                                        elem_id='text-only')
                ask = gr.Button('Ask', variant='primary', elem_id='ask')
            with gr.Column():
                answer = gr.Textbox(label='Answer', lines=3, interactive=False,
                                    elem_id='answer')
                status = gr.HTML(elem_id='status')
                chart = gr.HTML(router_chart_html(None), elem_id='router-chart')
                if demo is not None:
                    gr.Markdown(decoding_markdown(demo), elem_id='decoding')

        requests = itertools.count(1)

        def handler(image, question, context, choices, text_only):
            yield from respond(demo, load_error, image, question, context, choices, text_only,
                               next(requests))

        image.change(preview_image, image, preview, concurrency_limit=None)
        ask.click(handler, [image, question, context, choices, text_only],
                  [answer, status, chart], concurrency_limit=1)
    return app.queue(default_concurrency_limit=1)


def launch(app, port: Optional[int] = None, host: str = '127.0.0.1', block: bool = True):
    """Serve ``app`` on ``host:port`` (port None: gradio picks a free one), without a share
    link or analytics; returns the app's local URL when ``block`` is False."""
    app.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block,
               inbrowser=False, quiet=True)
    return app.local_url

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
from typing import Iterator, List, Optional, Tuple

from mma.datasets.prompts import DEFAULT_OPTIONS

from .chart import router_chart_html
from .errors import DemoError
from .examples import held_out_examples
from .images import MAX_PIXELS, preview
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
    """The decoding settings, for the page's "Decoding" toggle."""
    s = demo.decoding_settings()
    mode = 'greedy' if s['temperature'] <= 0 else \
        f'temperature {s["temperature"]}, top-p {s["top_p"]}, seed {s["seed"]}'
    stops = [f'stop pattern `{s["stop_pattern"]}`'] if s['stop_pattern'] else []
    stops += [f'stop string `{t!r}`' for t in s['stop_strings']]
    stops += ['EOS'] if s['stop_at_eos'] else []
    return (f'The config\'s `generation_cfg`, as `tools/test.py` uses it: {mode}, at most '
            f'{s["max_new_tokens"]} new tokens, KV cache; stops at {", ".join(stops) or "nothing"}.'
            f' Prompt format with choices: `{demo.prompt_format}`.')


def choice_letters(demo: Optional[WebDemo], choices: str) -> str:
    """The choices as the model sees them: ``(A) red  (B) green ...`` (HTML)."""
    options = demo.options if demo is not None else DEFAULT_OPTIONS
    parsed = parse_choices(choices)
    if not parsed:
        return '<div class="mma-letters"><em>No choices yet.</em></div>'
    items = ' &nbsp; '.join(f'<b>({html.escape(letter)})</b> {html.escape(c)}'
                            for letter, c in zip(options, parsed))
    extra = len(parsed) - len(options)
    more = f' &nbsp; <em>{extra} more than the {len(options)} option letters</em>' \
        if extra > 0 else ''
    return f'<div class="mma-letters">The model sees: {items}{more}</div>'


def answer_text(demo: WebDemo, reply: Reply, choices) -> str:
    """The answer box: while streaming the text so far; when done, the chosen option's text
    first (``(B) green``), then what the model wrote."""
    if not (reply.done and choices) or reply.error:
        return reply.text
    chosen = demo.chosen_option(reply.text, choices)
    head = chosen or 'No option: the answer names none of the choices\' letters.'
    return f'{head}\n\nModel output: {reply.text}'


#: The page's message for a question without choices to a multiple-choice model.
NEEDS_CHOICES = ('This model answers multiple-choice questions (it was trained on '
                 'ScienceQA-format questions and answers with an option letter): type two or '
                 'more choices, one per line, or click one of the examples.')


def respond(demo: Optional[WebDemo], load_error: Optional[str], image: Optional[str],
            question: str, context: str, choices: str, text_only: bool,
            request: int = 0) -> Iterator[Tuple[str, str, str]]:
    """The event handler: (answer, status, chart) updates for request number ``request``."""
    if demo is None:
        yield '', _status(Reply(error=load_error or 'no model is loaded', done=True), request), ''
        return
    parsed = parse_choices(choices)
    if demo.multiple_choice and len(parsed) < 2:
        yield '', _status(Reply(error=NEEDS_CHOICES, done=True), request), \
            router_chart_html(None)
        return
    reply = Reply()
    for reply in demo.stream(question, parsed, context, image, text_only):
        chart = router_chart_html(reply.routing, reply.has_image, demo.router_paths) \
            if reply.done else ''
        yield answer_text(demo, reply, parsed), _status(reply, request), chart


def preview_image(path: Optional[str]):
    """(picture, message) for the page: the upload downscaled for display, or None and why it
    cannot be used (the same check the answer makes)."""
    if not path:
        return None, ''
    try:
        return preview(path), ''
    except DemoError as err:
        return None, f'<div class="mma-error" style="color:#b00020">{html.escape(str(err))}</div>'


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
              title: str = 'mma web demo', examples: Optional[List[List[str]]] = None):
    """The gradio ``Blocks`` of the page, queued (one generation at a time).

    Args:
        demo: The loaded model; None when loading failed (the page then shows ``load_error``
            and every request answers with it).
        load_error: Why no model is loaded.
        title: Page title.
        examples: ``[image, question, context, choices]`` rows to click; default: held-out
            image questions of the model's test split (:func:`held_out_examples`). Their
            folders must be readable by the server: :func:`launch` allows ``app.mma_files``.
    """
    import gradio as gr
    if examples is None:
        examples = held_out_examples(demo.data_root) if demo is not None else []
    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(f'# {html.escape(title)}\nAsk about an image (or none): click an example '
                    'below to fill the form, or upload your own picture. The answer streams '
                    'from the model; the chart shows how its modality routers weighted the '
                    'adapters of each LLM layer for your input.')
        if load_error:
            gr.HTML(f'<div class="mma-error" id="load-error" style="color:#b00020"><b>Error:</b> '
                    f'{html.escape(load_error)}</div>')
        with gr.Row():
            with gr.Column():
                image = gr.File(label=f'Image (optional: PNG, JPEG, ...; up to '
                                f'{MAX_PIXELS / 1e6:g} megapixels)', type='filepath',
                                elem_id='image')
                upload_note = gr.HTML(elem_id='upload-note')
                shown = gr.Image(label='The image as read', type='pil', interactive=False,
                                 height=160, elem_id='preview', **_no_share_button(gr.Image))
                question = gr.Textbox(label='Question', value=EXAMPLE_QUESTION,
                                      elem_id='question')
                context = gr.Textbox(label='Context (optional)', elem_id='context')
                needs = 'two or more, ' if demo is not None and demo.multiple_choice else \
                    'optional, '
                choices = gr.Textbox(label=f'Choices ({needs}one per line: ScienceQA format)',
                                     value=EXAMPLE_CHOICES, lines=4, elem_id='choices')
                letters = gr.HTML(choice_letters(demo, EXAMPLE_CHOICES), elem_id='letters')
                text_only = gr.Checkbox(label='Text-only: answer without the image',
                                        elem_id='text-only')
                ask = gr.Button('Ask', variant='primary', elem_id='ask')
            with gr.Column():
                answer = gr.Textbox(label='Answer', lines=4, interactive=False,
                                    elem_id='answer')
                status = gr.HTML(elem_id='status')
                chart = gr.HTML(router_chart_html(None), elem_id='router-chart')
                if demo is not None:
                    with gr.Accordion('Decoding settings', open=False, elem_id='decoding'):
                        gr.Markdown(decoding_markdown(demo))
        if examples:
            gr.Examples(examples, [image, question, context, choices], elem_id='examples',
                        label='Examples: held-out questions of the demo, not seen in '
                        'training (click one, then Ask)')

        requests = itertools.count(1)

        def handler(image, question, context, choices, text_only):
            yield from respond(demo, load_error, image, question, context, choices, text_only,
                               next(requests))

        image.change(preview_image, image, [shown, upload_note], concurrency_limit=None)
        choices.change(lambda c: choice_letters(demo, c), choices, letters,
                       concurrency_limit=None)
        ask.click(handler, [image, question, context, choices, text_only],
                  [answer, status, chart], concurrency_limit=1)
    app.mma_files = sorted({os.path.dirname(os.path.dirname(row[0])) for row in examples})
    return app.queue(default_concurrency_limit=1)


def launch(app, port: Optional[int] = None, host: str = '127.0.0.1', block: bool = True):
    """Serve ``app`` on ``host:port`` (port None: gradio picks a free one), without a share
    link or analytics, its examples' folders readable; returns the app's local URL when
    ``block`` is False."""
    app.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block,
               inbrowser=False, quiet=True, allowed_paths=getattr(app, 'mma_files', None))
    return app.local_url

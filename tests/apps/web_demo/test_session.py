"""The web demo's logic without a browser: the answers are tools/test.py's, the text-only switch,
router weights per LLM layer, error messages, a closed request stops, concurrent requests."""
import threading

import pytest

from .conftest import image_path

from mma.apps.web_demo import DemoError, WebDemo, load_web_demo, router_chart_html


@pytest.fixture(scope='module')
def demo(demo_run) -> WebDemo:
    # no CONFIG: the model tools/demo.py trained, as `tools/web_demo.py` serves it
    return load_web_demo(demo_dir=demo_run['work_dir'])


def _ask(demo, run, qid, text_only=False, **kw):
    p = run['problems'][qid]
    return demo.answer(p['question'], p['choices'], p['hint'], image_path(run, qid), text_only,
                       **kw)


def test_answers_are_those_of_tools_test(demo, demo_run):
    from mma.datasets import ScienceQADataset
    ds = ScienceQADataset(demo_run['data_root'], split='test', prompt_format=demo.prompt_format,
                          test_mode=True, pipeline=[])
    kinds = set()
    for i, qid in enumerate(demo_run['test_qids']):
        p = demo_run['problems'][qid]
        # the prompt is the one evaluation builds for this question
        assert demo.prompt(p['question'], p['choices'], p['hint']) == ds.get_data_info(i)['prompt']
        reply = _ask(demo, demo_run, qid)
        assert reply.error is None and reply.done
        assert reply.has_image == bool(p['image'])
        assert reply.text == demo_run['answers'][qid], qid
        kinds.add(reply.has_image)
        if p['image']:  # the text-only switch: tools/test.py's answer without the image
            alone = _ask(demo, demo_run, qid, text_only=True)
            assert not alone.has_image
            assert alone.text == demo_run['text_only_answers'][qid], qid
    assert kinds == {True, False}


def test_router_weights_per_llm_layer(demo, demo_run):
    from mma.apps.visualization import router_weights
    image_q = next(q for q in demo_run['test_qids'] if demo_run['problems'][q]['image'])
    with_image = _ask(demo, demo_run, image_q)
    without = _ask(demo, demo_run, image_q, text_only=True)
    n_layers = demo.model.llm.args.n_layers
    assert list(with_image.routing) == [f'layers.{i}.adapter_attn' for i in range(n_layers)]
    # the weights of a separate forward of the modality token (row 0 image, row 1 text-only)
    ref = router_weights(demo.model)
    for name, w in with_image.routing.items():
        assert w == pytest.approx(ref[name][0].tolist(), abs=1e-6)
        assert without.routing[name] == pytest.approx(ref[name][1].tolist(), abs=1e-6)
    assert with_image.routing != without.routing
    chart = router_chart_html(with_image.routing, with_image.has_image)
    assert chart.count('class="mma-layer"') == n_layers
    k = len(next(iter(with_image.routing.values())))
    assert chart.count('class="mma-bar"') == n_layers * k
    assert [f'data-layer="{i}"' in chart for i in range(n_layers)] == [True] * n_layers


def test_errors_are_messages(demo, demo_run, tmp_path):
    qid = demo_run['test_qids'][0]
    p = demo_run['problems'][qid]
    bad = tmp_path / 'holiday.png'
    bad.write_bytes(open(image_path(demo_run, qid), 'rb').read()[:40])  # truncated PNG
    reply = demo.answer(p['question'], p['choices'], '', str(bad))
    assert reply.done and reply.text == '' and 'holiday.png' in reply.error
    assert 'cannot be read' in reply.error
    # text-only ignores the image: no error then
    assert demo.answer(p['question'], p['choices'], '', str(bad), text_only=True).error is None
    long = demo.answer(p['question'], p['choices'], 'many words ' * 200)
    assert long.error.startswith('The prompt is too long') and '256' in long.error
    assert 'Type a question' in demo.answer('  ', p['choices']).error
    assert 'option letters' in demo.answer('q?', list('abcdefg')).error
    with pytest.raises(DemoError, match='tools/demo.py'):
        load_web_demo(demo_dir=str(tmp_path / 'nothing'))
    with pytest.raises(DemoError, match='config file not found|No such file'):
        load_web_demo(str(tmp_path / 'missing.py'))


def test_closing_the_stream_stops_generation(demo):
    steps = []
    hook = demo.model.llm.output.register_forward_hook(lambda *a: steps.append(1))
    free = dict(max_new_tokens=120, stop_pattern=None, stop_at_eos=False)
    try:
        full = demo.answer('Which colour?', max_new_tokens=120, stop_pattern=None,
                           stop_at_eos=False)
        assert full.error is None and len(steps) == 120  # prefill + 119 decode steps
        steps.clear()
        stream = demo.stream('Which colour?', **free)
        first = next(stream)
        assert first.text and not first.done
        stream.close()  # what gradio does when the browser closes the request
        worker = [t for t in threading.enumerate() if t.name == 'mma-web-demo-generate']
        for t in worker:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in worker)
        assert len(steps) < 60, len(steps)
    finally:
        hook.remove()


def test_concurrent_requests_get_their_own_answers(demo, demo_run):
    qids = demo_run['test_qids'][:4]
    got = {}

    def ask(q):
        got[q] = _ask(demo, demo_run, q).text

    threads = [threading.Thread(target=ask, args=(q,)) for q in qids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert got == {q: demo_run['answers'][q] for q in qids}


def test_the_answer_streams(demo, demo_run):
    qid = demo_run['test_qids'][0]
    p = demo_run['problems'][qid]
    replies = list(demo.stream(p['question'], p['choices'], p['hint'], image_path(demo_run, qid),
                               stop_pattern=None, stop_at_eos=False, max_new_tokens=12))
    texts = [r.text for r in replies]
    assert len(replies) > 2 and [r.done for r in replies] == [False] * (len(replies) - 1) + [True]
    assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(texts[:-2], texts[1:-1]))
    assert texts[-1] == texts[-2]  # the final reply repeats the streamed text, now complete


def test_page_handler_reports_a_model_that_did_not_load():
    from mma.apps.web_demo.ui import respond
    out = list(respond(None, 'The model could not be loaded: no such file', None, 'q?', '', '',
                       False, request=3))
    assert len(out) == 1
    answer, status, chart = out[0]
    assert answer == '' and 'mma-error' in status and 'no such file' in status
    assert 'data-request="3"' in status


def bilevel_png(path, width: int, height: int) -> str:
    """A valid, all-black 1-bit PNG of ``width`` x ``height`` written row by row (a 20000 px
    square is ~50 kB on disk: the size of a decompression bomb without its memory)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + \
            struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)

    z = zlib.compressobj(9)
    row = b'\x00' * (1 + (width + 7) // 8)  # filter byte 0, then the packed pixels
    idat = b''.join(z.compress(row) for _ in range(height)) + z.flush()
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 1,
                                                                   0, 0, 0, 0))
                + chunk(b'IDAT', idat) + chunk(b'IEND', b''))
    return str(path)


def test_upload_size_limit_and_names(tmp_path):
    from PIL import Image

    from mma.apps.web_demo.images import MAX_PIXELS, open_upload, preview
    # over the page's limit: refused from the header, named by the upload's own file name
    big = bilevel_png(tmp_path / 'poster.png', 8000, 6000)
    with pytest.raises(DemoError, match=r'"poster.png" is too large: 8000x6000 pixels'):
        open_upload(big)
    assert 8000 * 6000 > MAX_PIXELS
    # PIL's own refusals (warning over ~89 MP, error over ~179 MP) become the same message
    for name, side in (('warned.png', 10_000), ('bomb.png', 20_000)):
        with pytest.raises(DemoError, match=f'"{name}" is too large'):
            open_upload(bilevel_png(tmp_path / name, side, side), max_pixels=10 ** 9)
    # a picture under the limit: decoded, and the preview is downscaled to PREVIEW_SIZE
    Image.new('RGB', (1200, 600), (200, 30, 30)).save(tmp_path / 'wide.png')
    assert open_upload(str(tmp_path / 'wide.png')).size == (1200, 600)
    from mma.apps.web_demo.images import _check
    hits = _check.cache_info().hits
    assert preview(str(tmp_path / 'wide.png')).size == (512, 256)
    assert _check.cache_info().hits == hits + 1  # checked once per upload, not per use
    # a corrupt upload in a temporary folder like gradio's: the message shows no server path
    upload = tmp_path / 'gradio' / '0123abcd' / 'corrupt.png'
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b'\x89PNG\r\n\x1a\n' + b'\x00' * 64)
    with pytest.raises(DemoError, match='"corrupt.png" cannot be read') as err:
        open_upload(str(upload))
    assert str(tmp_path) not in str(err.value)


def test_page_shows_options_paths_and_refuses_without_choices(demo, demo_run):
    from mma.apps.visualization import router_weights
    from mma.apps.web_demo.examples import held_out_examples
    from mma.apps.web_demo.ui import NEEDS_CHOICES, choice_letters, respond
    assert demo.chosen_option('The answer is B.', ['red', 'green']) == '(B) green'
    assert demo.chosen_option('The answer is C.', ['red', 'green']) is None
    assert 'The model sees: <b>(A)</b> red &nbsp; <b>(B)</b> green' in \
        choice_letters(demo, 'red\n\ngreen\n')
    # the demo model answers multiple-choice questions: the page refuses a question without
    assert demo.multiple_choice
    (answer, status, _), = respond(demo, None, None, 'What colour?', '', '\n', False, 1)
    assert answer == '' and html_unescape(NEEDS_CHOICES) in html_unescape(status)
    # the image path is the expert whose weight rises from text-only to image input
    ref = router_weights(demo.model)
    for name, labels in demo.router_paths.items():
        assert sorted(labels) == ['image path', 'text path']
        img, txt = labels.index('image path'), labels.index('text path')
        assert ref[name][0, img] > ref[name][1, img] and ref[name][0, txt] < ref[name][1, txt]
    # a question of the test split through the page: the option's text heads the answer
    qid = next(q for q in demo_run['test_qids'] if demo_run['problems'][q]['image'])
    p = demo_run['problems'][qid]
    *_, (answer, status, chart) = respond(demo, None, image_path(demo_run, qid), p['question'],
                                          p['hint'], '\n'.join(p['choices']), False, 2)
    raw = demo_run['answers'][qid]
    assert answer.endswith(f'Model output: {raw}')
    assert answer.startswith(demo.chosen_option(raw, p['choices']) or 'No option')
    n_bars = chart.count('class="mma-bar"')
    assert n_bars and chart.count('class="mma-value"') == n_bars
    assert 'data-path="image path"' in chart and 'data-path="text path"' in chart
    # examples: image questions of the held-out split, with their pictures on disk
    rows = held_out_examples(demo_run['data_root'])
    assert rows and len({r[1] for r in rows}) > 1
    test_images = {image_path(demo_run, q) for q in demo_run['test_qids']}
    for image, question, context, choices in rows:
        assert image in test_images and choices.split('\n')[0]


def html_unescape(text: str) -> str:
    import html
    return html.unescape(text)

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

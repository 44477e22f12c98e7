"""The web demo in a real headless Chromium (Playwright over Debian's ``chromium``):
tools/web_demo.py serves the tiny trained demo; the page must show tools/test.py's answers headed
by the chosen option's text (an example clicked too), the text-only answer, one router bar group
per LLM layer with path labels and values, a corrupt and an over-limit upload's error, a refusal
without choices, two sessions' own answers at once, request nothing from another host, and leave
no traceback in the server log. Saves a PNG screenshot."""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from .conftest import REPO, image_path
from .test_session import bilevel_png

from mma.apps.web_demo.examples import held_out_examples

CHROMIUM = next((p for p in (shutil.which(n) for n in ('chromium', 'chromium-browser'))
                 if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason='no Chromium on this machine: install Debian\'s chromium '
    '(apt-get install -y chromium chromium-driver) to run the browser test')
sync_playwright = pytest.importorskip(
    'playwright.sync_api', reason='playwright is not installed (pip install -e \'.[test]\')'
).sync_playwright
pytest.importorskip('gradio', reason='gradio is not installed (pip install -e \'.[web]\')')

TIMEOUT_MS = 30_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def server(demo_dir, tmp_path_factory):
    """``tools/web_demo.py`` with no CONFIG (the model of the demo run), starting; yields a
    function that waits until it serves and returns its URL (it boots while the test computes
    tools/test.py's answers)."""
    port = _free_port()
    log = tmp_path_factory.mktemp('web_demo_server') / 'server.log'
    env = dict(os.environ, PYTHONPATH=REPO, HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1',
               GRADIO_ANALYTICS_ENABLED='False')
    with open(log, 'w') as out:
        proc = subprocess.Popen([sys.executable, os.path.join(REPO, 'tools', 'web_demo.py'),
                                 '--demo-dir', demo_dir, '--port', str(port)],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}/'

    def wait_until_up() -> str:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                return url
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError(f'web demo did not start:\n{log.read_text()[-3000:]}')
                time.sleep(0.5)

    wait_until_up.log = log
    try:
        yield wait_until_up
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _fill(page, run, qid, text_only=False, image=None):
    """Fill the form with test question ``qid`` (its own image unless ``image``); returns the
    request number of the status shown now (None before the first answer)."""
    p = run['problems'][qid]
    image = image or image_path(run, qid)
    clear = page.locator('#image button[aria-label="Clear"]')
    if clear.count():  # the file of the previous question
        clear.first.click()
    if image is not None:
        page.locator('#image input[type=file]').set_input_files(image)
        page.wait_for_selector('#image button[aria-label="Clear"]', timeout=TIMEOUT_MS)
    page.fill('#question textarea', p['question'])
    page.fill('#context textarea', p['hint'])
    page.fill('#choices textarea', '\n'.join(p['choices']))
    page.locator('#text-only input[type=checkbox]').set_checked(text_only)
    before = page.locator('#status [data-request]')
    return before.get_attribute('data-request') if before.count() else None


def _ask(page, run, qid, text_only=False, image=None):
    previous = _fill(page, run, qid, text_only, image)
    page.click('#ask')
    return previous


#: True once the status line belongs to another request than ``previous`` and is final.
_DONE_JS = '''previous => {
  const s = document.querySelector('#status [data-request]');
  return s !== null && s.dataset.request !== previous && s.dataset.done === '1';
}'''


def _output(answer: str) -> str:
    """What the model wrote, from the answer box (``(B) green\n\nModel output: ...``)."""
    return answer.split('Model output: ', 1)[-1]


def _option(run, qid) -> str:
    """``(B) green``: the option tools/test.py's answer to ``qid`` names ('No option' if none)."""
    choices = run['problems'][qid]['choices']
    m = re.search(r'The answer is ([A-Z]).', run['answers'][qid])
    idx = ord(m.group(1)) - ord('A') if m else -1
    return f'({chr(65 + idx)}) {choices[idx]}' if 0 <= idx < len(choices) else 'No option'


def _result(page, previous):
    try:
        # polled: animation frames do not run in a page that is not in front
        page.wait_for_function(_DONE_JS, arg=previous, timeout=TIMEOUT_MS, polling=100)
    except Exception as err:  # say what the page shows instead
        raise AssertionError(f'no answer in the page ({err}); status: '
                             f'{page.inner_html("#status")!r}; answer: '
                             f'{page.locator("#answer textarea").input_value()!r}') from None
    return page.locator('#answer textarea').input_value()


@pytest.mark.slow
def test_web_demo_in_chromium(server, demo_run, tmp_path):
    run = demo_run
    url = server()
    image_q = next(q for q in run['test_qids'] if run['problems'][q]['image'])
    text_q = next(q for q in run['test_qids'] if not run['problems'][q]['image'])
    from mmengine.config import Config
    n_layers = Config.fromfile(run['config']).model.llm.n_layers
    hosts = set()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=['--no-sandbox'])
        try:
            page = browser.new_page(viewport={'width': 1280, 'height': 900})
            page.on('request', lambda r: hosts.add(r.url.split('/')[2]))
            page.goto(url, wait_until='networkidle')

            # the demo's image question with its picture: tools/test.py's answer, headed by
            # the option's text; the choices shown with their letters
            answer = _result(page, _ask(page, run, image_q))
            assert _output(answer) == run['answers'][image_q]
            assert answer.startswith(_option(run, image_q) + '\n')
            choices = run['problems'][image_q]['choices']
            assert f'(B) {choices[1]}' in page.inner_text('#letters')
            assert 'image + text' in page.inner_text('#status')
            layers = page.locator('#router-chart .mma-layer')
            assert layers.count() == n_layers
            assert [layers.nth(i).get_attribute('data-layer') for i in range(n_layers)] == \
                [str(i) for i in range(n_layers)]
            image_weights = page.locator('#router-chart .mma-bar').evaluate_all(
                'bars => bars.map(b => b.dataset.weight)')
            # the chart's labels and values as a reader sees them
            assert page.locator('#router-chart .mma-legend').all_inner_texts() == \
                ['\u25a0 image path', '\u25a0 text path']
            bars = page.locator('#router-chart .mma-bar').evaluate_all(
                'bars => bars.map(b => [b.dataset.path, b.dataset.weight, b.innerText, '
                'b.getBoundingClientRect().height])')
            assert sorted({b[0] for b in bars}) == ['image path', 'text path']
            assert [b[2] for b in bars] == [f'{float(b[1]):.2f}' for b in bars]
            tallest = max(bars, key=lambda b: float(b[1]))
            assert tallest[3] >= 0.5 * 150, tallest  # a readable height: 160 px for weight 1
            assert page.locator('#router-chart .mma-y-axis [data-tick]').all_inner_texts() == \
                ['1', '0.75', '0.5', '0.25', '0']
            page.screenshot(path=str(tmp_path / 'web_demo.png'), full_page=True)

            # text-only toggle: the answer without the image, other router weights
            assert _output(_result(page, _ask(page, run, image_q, text_only=True))) == \
                run['text_only_answers'][image_q]
            assert 'text only' in page.inner_text('#status')
            assert page.locator('#router-chart .mma-layer').count() == n_layers
            assert page.locator('#router-chart .mma-bar').evaluate_all(
                'bars => bars.map(b => b.dataset.weight)') != image_weights

            # a corrupt upload: a message in the page
            bad = tmp_path / 'corrupt.png'
            bad.write_bytes(b'\x89PNG\r\n\x1a\n' + b'\x00' * 64)
            _result(page, _ask(page, run, image_q, image=str(bad)))
            error = page.inner_text('#status .mma-error')
            assert 'corrupt.png' in error and 'cannot be read' in error
            assert 'gradio' not in error and str(tmp_path) not in error  # no server path

            # an over-limit picture (PIL's decompression-bomb size): said on upload and on Ask
            bomb = bilevel_png(tmp_path / 'bomb.png', 20_000, 20_000)
            _result(page, _ask(page, run, image_q, image=bomb))
            assert '"bomb.png" is too large' in page.inner_text('#status .mma-error')
            assert '"bomb.png" is too large' in page.inner_text('#upload-note')

            # a question without choices: the page says the model needs them
            previous = _fill(page, run, text_q)
            page.fill('#choices textarea', '')
            page.click('#ask')
            _result(page, previous)
            assert 'answers multiple-choice questions' in page.inner_text('#status .mma-error')

            # an example: a held-out picture with its question and choices, answered as
            # tools/test.py answers that question
            clear = page.locator('#image button[aria-label="Clear"]')
            if clear.count():
                clear.first.click()
            example = held_out_examples(run['data_root'])[1]
            example_q = os.path.basename(os.path.dirname(example[0]))
            page.locator('#examples tbody tr').nth(1).click()
            page.wait_for_selector('#image button[aria-label="Clear"]', timeout=TIMEOUT_MS)
            assert page.locator('#question textarea').input_value() == example[1]
            assert page.locator('#choices textarea').input_value() == example[3]
            before = page.locator('#status [data-request]').get_attribute('data-request')
            page.click('#ask')
            answer = _result(page, before)
            assert 'image + text' in page.inner_text('#status')
            assert _output(answer) == run['answers'][example_q]
            assert answer.startswith(_option(run, example_q) + '\n')

            # two browser sessions asking at once get their own answers
            pages = [browser.new_context().new_page() for _ in range(2)]
            for p in pages:
                p.on('request', lambda r: hosts.add(r.url.split('/')[2]))
                p.goto(url, wait_until='networkidle')
            previous = [_fill(pages[0], run, image_q), _fill(pages[1], run, text_q)]
            for p in pages:
                p.click('#ask')
            assert [_output(_result(p, r)) for p, r in zip(pages, previous)] == \
                [run['answers'][image_q], run['answers'][text_q]]
        finally:
            browser.close()
    # every problem above was a message in the page, none a traceback in the server's log
    log = server.log.read_text()
    assert 'Traceback' not in log, log[-3000:]
    # offline: every request of the pages went to the demo's own server
    assert hosts == {url.split('/')[2]}, hosts
    png = (tmp_path / 'web_demo.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 10_000
    if os.environ.get('MMA_WEB_DEMO_SCREENSHOT'):  # how docs/images/web_demo.png is made
        shutil.copy(tmp_path / 'web_demo.png', os.environ['MMA_WEB_DEMO_SCREENSHOT'])

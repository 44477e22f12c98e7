"""mma as an lmms-eval model: lmms-eval's ``simple_evaluate`` with ``model='mma'`` (found through
mma's ``lmms_eval.models`` entry point, as the CLI's ``--model mma``), offline, on a local data
set in the demo's ScienceQA layout.

The model is trained for a few steps on the questions, so that it answers some right and some
wrong: the generated answers equal ``tools/test.py``'s question by question, hence the accuracy
(neither 0 nor 100), and every option's log-likelihood equals mma's own choice scoring
(``LaVIN.choice_logliks``) on samples that mma's ScienceQA dataset builds. Skipped where the
``[lmms-eval]`` extra is not installed.
"""
import glob
import importlib.metadata
import importlib.util
import json
import os
import re

import pytest
import torch

from conftest import randomize_adapters

pytest.importorskip('lmms_eval')

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
TASKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'tasks')
N_TEST = 12


def _module(name, path):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, *path.split('/')))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_on_questions(model, data_root, steps: int = 60, lr: float = 3e-2):
    """Fit the adapters to the test questions' ``The answer is X.`` (QCM-A) for a few full-batch
    Adam steps: too few to learn every answer, enough for the answer template."""
    from mma.datasets import LoadLaVINImage, ScienceQADataset, TokenizeForLaVIN, mma_collate
    data = ScienceQADataset(data_root=str(data_root), split='test', prompt_format='QCM-A',
                            pipeline=[LoadLaVINImage(size=list(model.vision.image_size)),
                                      TokenizeForLaVIN(tokenizer=model.tokenizer,
                                                       num_visual_tokens=model.num_visual_tokens)])
    inputs = model.data_preprocessor(mma_collate([data[i] for i in range(len(data))]),
                                     True)['inputs']
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: on a busy machine more threads only wait (20x)
    try:
        for _ in range(steps):
            loss = model(inputs, mode='loss')['loss']
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


@pytest.fixture(scope='module')
def assets(tmp_path_factory, tokenizer_path):
    """The demo's synthetic ScienceQA folder, the tiny LaVIN config of tools/test.py's own test
    over it (random frozen weights, seeded) and adapters trained on its questions."""
    import mma
    from mma.apps.demo.synthetic import write_synthetic_scienceqa
    tmp = tmp_path_factory.mktemp('lmms')
    write_synthetic_scienceqa(str(tmp / 'scienceqa'), n_train=4, n_val=2, n_test=N_TEST,
                              image_size=32)
    cfg = tmp / 'tiny_sqa.py'
    test_tool_test = _module('mma_test_test_tool', 'tests/tools/test_test_tool.py')
    model_cfg = test_tool_test.write_config(cfg, tokenizer_path, tmp / 'scienceqa')
    torch.manual_seed(0)
    model = randomize_adapters(mma.build_model(model_cfg), seed=5)
    model = train_on_questions(model, tmp / 'scienceqa')
    ckpt = tmp / 'adapters.pth'
    torch.save(model.trainable_state_dict(), ckpt)
    return dict(dir=tmp, config=str(cfg), checkpoint=str(ckpt))


def test_entry_point_registers_mma():
    names = [ep.name for ep in importlib.metadata.entry_points(group='lmms_eval.models')]
    assert 'mma' in names, ("mma's lmms_eval.models entry point is not installed: reinstall mma "
                            "(pip install -e '.[lmms-eval]')")
    from lmms_eval.models import get_model
    from mma.apps.lmms_eval.model import MMA
    assert get_model('mma') is MMA


def _mma_choice_logliks(assets):
    """Reference: per qid, mma's own choice scoring on samples of mma's ScienceQA dataset."""
    import mma
    from mmengine.config import Config
    from mma.datasets import mma_collate
    from mma.engine import sync_data_with_model
    from mma.registry import DATASETS
    cfg = Config.fromfile(assets['config'])
    model = mma.load_model(cfg, assets['checkpoint'])
    sync_data_with_model(cfg, model)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    tokenize = dataset.pipeline.transforms[-1]
    samples = [dataset[i] for i in range(len(dataset))]
    for s in samples:
        s['inputs']['choice_ids'] = [tokenize.encode_piece(c) for c in s['data_samples']['choices']]
    logliks = model.choice_logliks(model.data_preprocessor(mma_collate(samples), False)['inputs'])
    return {s['data_samples']['qid']: (ll, s['data_samples']['answer_idx'])
            for s, ll in zip(samples, logliks)}


def test_lmms_eval_matches_test_tool(assets, monkeypatch):
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager
    tmp = assets['dir']
    monkeypatch.chdir(tmp)  # the task YAMLs read scienceqa/ under the working directory
    tool_out = tmp / 'tool_predictions.json'
    _module('mma_tools_test', 'tools/test.py').main(
        [assets['config'], assets['checkpoint'], '--work-dir', str(tmp / 'tool'),
         '--out', str(tool_out)])
    tool = json.loads(tool_out.read_text())
    assert len(tool['predictions']) == N_TEST
    assert 0 < tool['metrics']['Avg'] < 100  # some answers right, some wrong

    out = simple_evaluate(
        model='mma', model_args=f'config={assets["config"]},checkpoint={assets["checkpoint"]}',
        tasks=['mma_tiny_sqa', 'mma_tiny_sqa_mc'], batch_size=5, device='cpu',
        task_manager=TaskManager(include_path=TASKS), log_samples=True, bootstrap_iters=0)
    scores = out['results']

    # the task's docs are the test split in pid_splits.json order (tasks/utils.py)
    qids = json.loads((tmp / 'scienceqa' / 'pid_splits.json').read_text())['test']

    # generate_until: the same text for every question, hence the same accuracy
    gen = {qids[s['doc_id']]: s['filtered_resps'] for s in out['samples']['mma_tiny_sqa']}
    assert sorted(gen) == sorted(p['qid'] for p in tool['predictions'])
    for p in tool['predictions']:
        got = gen[p['qid']]
        got = got[0] if isinstance(got, list) else got
        assert got.strip() == p['pred_text'].strip(), p['qid']
    assert scores['mma_tiny_sqa']['accuracy,none'] == pytest.approx(tool['metrics']['Avg'])

    # loglikelihood: each option's score (a negative log-likelihood, as lmms-eval's models
    # return a loss) equals mma's choice scoring; the accuracy follows
    ref = _mma_choice_logliks(assets)
    mc = out['samples']['mma_tiny_sqa_mc']
    assert len(mc) == N_TEST
    correct = []
    for s in mc:
        lls, gold = ref[qids[s['doc_id']]]
        got = [-float(score) for score, _ in s['filtered_resps']]
        assert got == pytest.approx(lls, abs=1e-4), qids[s['doc_id']]
        correct.append(max(range(len(lls)), key=lls.__getitem__) == gold)
    assert 0 < sum(correct) < N_TEST  # a score that separates right from wrong
    assert scores['mma_tiny_sqa_mc']['acc,none'] == pytest.approx(sum(correct) / N_TEST)


def test_loglikelihood_greedy_flag_and_batching(assets):
    """``is_greedy`` is True exactly when greedy decoding produces the continuation, and the
    scores do not depend on the batch size."""
    from lmms_eval.api.instance import Instance
    from PIL import Image
    from mma.apps.lmms_eval.model import MMA
    images = sorted(glob.glob(str(assets['dir'] / 'scienceqa' / 'images' / 'test' / '*' /
                                  'image.png')))
    docs = [dict(visuals=[Image.open(p).convert('RGB')]) for p in images[:3]] + [
        dict(visuals=[]) for _ in range(3)]
    prompts = [f'Question: What colour is thing {i}?\nResponse:' for i in range(len(docs))]
    lm = MMA(config=assets['config'], checkpoint=assets['checkpoint'], device='cpu', batch_size=2)

    samples = [lm.sample(prompts[i], d['visuals'], str(i)) for i, d in enumerate(docs)]
    greedy = lm.model.generate(lm._batch(samples), max_new_tokens=3, stop_at_eos=False,
                               stop_pattern=None).tokens
    conts = [g[:1 + i % 3] for i, g in enumerate(greedy)]  # greedy prefixes of 1-3 tokens
    conts += [g[:i % 3] + [(g[i % 3] + 1) % 512] for i, g in enumerate(greedy)]  # one off
    assert [g for _, g in lm.score(samples + samples, conts)] == [True] * 6 + [False] * 6

    def request(i, text):
        return Instance(request_type='loglikelihood', arguments=(
            prompts[i], text, lambda d: d['visuals'], i, 't', 'test'), idx=0,
            metadata=dict(task='t', doc_id=i, repeats=1))
    lm.task_dict = {'t': {'test': docs}}
    reqs = [request(i, w) for i in range(len(docs)) for w in (' red', ' blue square')]
    two = [getattr(r, 'text', r) for r in lm.loglikelihood(reqs)]
    lm.batch_size = 5
    five = [getattr(r, 'text', r) for r in lm.loglikelihood(reqs)]
    assert [g for _, g in five] == [g for _, g in two]
    assert [s for s, _ in five] == pytest.approx([s for s, _ in two], abs=1e-5)
    assert all(s > 0 for s, _ in two)  # negative log-likelihoods

    # prompt=instruction wraps the task's text in mma's instruction template; answer_regex
    # returns the first group of its match
    from mma.datasets import instruction
    lm.prompt = 'instruction'
    assert lm.sample('What is it?', [], 'x')['inputs']['input_ids'].tolist() == \
        lm.tokenize(dict(prompt=instruction('What is it?')))['inputs']['input_ids'].tolist()
    text = lm.generate_until([request(3, dict(max_new_tokens=4))])[0]
    lm.answer_regex = re.compile(r'^\s*(\S)')
    assert lm.generate_until([request(3, dict(max_new_tokens=4))]) == [text.lstrip()[:1]]

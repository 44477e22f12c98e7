"""mma as an lmms-eval model: lmms-eval's own CLI with ``--model mma`` (found through mma's
``lmms_eval.models`` entry point), offline, on a local data set in the demo's ScienceQA layout.

The generated answers and the accuracy equal ``tools/test.py``'s on the same questions, and every
option's log-likelihood equals mma's own choice scoring (``LaVIN.choice_logliks``) on samples that
mma's ScienceQA dataset builds. Skipped where the ``[lmms-eval]`` extra is not installed.
"""
import glob
import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from conftest import randomize_adapters

pytest.importorskip('lmms_eval')

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
TASKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'tasks')
N_TEST = 12


def write_config(path, tokenizer_path, data_root):
    """The tiny ScienceQA config of tools/test.py's own test (random frozen weights, seeded)."""
    spec = importlib.util.spec_from_file_location(
        'mma_test_test_tool', os.path.join(REPO, 'tests', 'tools', 'test_test_tool.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_config(path, tokenizer_path, data_root)


@pytest.fixture(scope='module')
def assets(tmp_path_factory, tokenizer_path):
    """The demo's synthetic ScienceQA folder, a tiny LaVIN config over it (random frozen weights,
    seeded) and a checkpoint of random adapters."""
    import mma
    from mma.apps.demo.synthetic import write_synthetic_scienceqa
    tmp = tmp_path_factory.mktemp('lmms')
    write_synthetic_scienceqa(str(tmp / 'scienceqa'), n_train=4, n_val=2, n_test=N_TEST,
                              image_size=32)
    cfg = tmp / 'tiny_sqa.py'
    model_cfg = write_config(cfg, tokenizer_path, tmp / 'scienceqa')
    torch.manual_seed(0)
    model = randomize_adapters(mma.build_model(model_cfg), seed=5)
    ckpt = tmp / 'adapters.pth'
    torch.save(model.trainable_state_dict(), ckpt)
    return dict(dir=tmp, config=str(cfg), checkpoint=str(ckpt))


def run(args, cwd):
    env = dict(os.environ, PYTHONPATH=REPO, HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1',
               HF_HOME=str(cwd / 'hf_home'), OMP_NUM_THREADS='1', WANDB_MODE='disabled')
    proc = subprocess.run([sys.executable] + args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout


def test_entry_point_registers_mma():
    names = [ep.name for ep in importlib.metadata.entry_points(group='lmms_eval.models')]
    assert 'mma' in names, ("mma's lmms_eval.models entry point is not installed: reinstall mma "
                            "(pip install -e '.[lmms-eval]')")
    from lmms_eval.models import get_model
    from mma.apps.lmms_eval.model import MMA
    assert get_model('mma') is MMA


def _samples(out_dir, task):
    files = glob.glob(str(out_dir / '**' / f'*_samples_{task}.jsonl'), recursive=True)
    assert len(files) == 1, files
    with open(files[0]) as f:
        return [json.loads(line) for line in f]


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


def test_lmms_eval_cli_matches_test_tool(assets):
    tmp = assets['dir']
    tool_out = tmp / 'tool_predictions.json'
    run([os.path.join(REPO, 'tools', 'test.py'), assets['config'], assets['checkpoint'],
         '--work-dir', str(tmp / 'tool'), '--out', str(tool_out)], tmp)
    tool = json.loads(tool_out.read_text())
    assert len(tool['predictions']) == N_TEST

    out_dir = tmp / 'lmms_out'
    run(['-m', 'lmms_eval', '--model', 'mma', '--model_args',
         f'config={assets["config"]},checkpoint={assets["checkpoint"]}',
         '--tasks', 'mma_tiny_sqa,mma_tiny_sqa_mc', '--include_path', TASKS,
         '--batch_size', '5', '--device', 'cpu', '--output_path', str(out_dir), '--log_samples'],
        tmp)
    results = glob.glob(str(out_dir / '**' / '*_results.json'), recursive=True)
    assert len(results) == 1, results
    scores = json.loads(open(results[0]).read())['results']

    # the task's docs are the test split in pid_splits.json order (tasks/utils.py)
    qids = json.loads((tmp / 'scienceqa' / 'pid_splits.json').read_text())['test']

    # generate_until: the same text for every question, hence the same accuracy
    gen = {qids[s['doc_id']]: s['filtered_resps'] for s in _samples(out_dir, 'mma_tiny_sqa')}
    assert sorted(gen) == sorted(p['qid'] for p in tool['predictions'])
    for p in tool['predictions']:
        assert gen[p['qid']].strip() == p['pred_text'].strip(), p['qid']
    assert scores['mma_tiny_sqa']['accuracy,none'] == pytest.approx(tool['metrics']['Avg'])

    # loglikelihood: each option's score (a negative log-likelihood, as lmms-eval's models
    # return a loss) equals mma's choice scoring; the accuracy follows
    ref = _mma_choice_logliks(assets)
    mc = _samples(out_dir, 'mma_tiny_sqa_mc')
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

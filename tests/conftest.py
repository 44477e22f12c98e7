"""Shared tiny fixtures: a SentencePiece tokenizer trained in-process and a tiny LaVIN whose
adapters are randomised (zero-initialised adapters would make routing invisible)."""
import json
import os
import subprocess
import sys

import pytest
import torch

os.environ.setdefault('HF_HUB_OFFLINE', '1')


# Parallel runs (pytest-xdist: `-n auto`, as the README's command): each worker gets its share of
# the cores for torch and for the processes it starts, so two workers on two cores don't fight
# over threads; each test file runs whole on one worker, so its module fixtures are built once;
# the files with end-to-end runs (`slow`) start first, so no worker is left with one at the end.
_WORKERS = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
if _WORKERS > 1:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    _threads = max(1, (_cores or 1) // _WORKERS)
    torch.set_num_threads(_threads)
    os.environ['OMP_NUM_THREADS'] = str(_threads)

#: Folders whose test files share a session fixture of their own conftest.py: one worker each.
ONE_WORKER_FOLDERS = ('tests/apps/web_demo/', )


def _scope(nodeid: str) -> str:
    path = nodeid.split('::', 1)[0]
    return next((f for f in ONE_WORKER_FOLDERS if path.startswith(f)), path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ByFile(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return _scope(nodeid)

    return ByFile(config, log)


def pytest_collection_modifyitems(config, items):
    if _WORKERS > 1:  # the same order on every worker: scopes with a slow test first
        slow = {_scope(i.nodeid) for i in items if i.get_closest_marker('slow')}
        items.sort(key=lambda i: _scope(i.nodeid) not in slow)


WORDS = ('the answer is A B C D E because image question context options response instruction '
         'a cat dog sits on mat red blue green yes no what color is sky grass two three four '
         'which animal can fly swim run plant water sun light heat magnet pull push N/A').split()


def sentences(n: int = 400):
    g = torch.Generator().manual_seed(0)
    out = ['Image: ', 'Image: N/A', 'The answer is A. BECAUSE: ', 'Question: Context: Options: (A) (B)',
           'Instruction: Response:']
    for _ in range(n):
        k = int(torch.randint(3, 12, (1,), generator=g))
        out.append(' '.join(WORDS[int(i)] for i in torch.randint(len(WORDS), (k,), generator=g)))
    return out


@pytest.fixture(scope='session')
def tokenizer_path(tmp_path_factory):
    from mma.toy import train_tokenizer
    return train_tokenizer(sentences(), str(tmp_path_factory.mktemp('tok') / 'tokenizer.model'),
                           vocab_size=512)


@pytest.fixture(scope='session')
def tokenizer(tokenizer_path):
    from mma.llms.tokenizer import SentencePieceTokenizer
    return SentencePieceTokenizer(tokenizer_path)


def randomize_adapters(model, seed: int = 0, std: float = 0.2):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * std)
    return model


def tiny_lavin_inputs(modality: str) -> dict:
    """Two samples of one modality for a tiny LaVIN of vocabulary 300 (merging tests)."""
    torch.manual_seed(5)
    has_image = modality == 'image'
    return dict(input_ids=torch.randint(3, 300, (2, 10)), has_image=torch.tensor([has_image] * 2),
                visual_pos=torch.tensor([3, 4]),
                images=torch.randn(2, 3, 32, 32) if has_image else None)


def perturb_norms_and_biases(model):
    """Norms and biases of a transformers model away from their init, so that each one matters."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith('norm.weight'):
                p.uniform_(0.5, 1.5)
            elif n.endswith('_proj.bias'):
                p.normal_(0, 0.5)
    return model


@pytest.fixture
def tiny_model(tokenizer_path):
    import mma
    from mma.toy import tiny_lavin_cfg
    torch.manual_seed(0)
    cfg = tiny_lavin_cfg(vocab_size=512)
    cfg['tokenizer'] = dict(type='SentencePieceTokenizer', model_path=tokenizer_path)
    model = mma.build_model(cfg)
    return randomize_adapters(model).eval()


SUBJECTS = ('natural science', 'social science', 'language science')
ANIMALS = ('cat', 'dog', 'sun', 'plant', 'magnet', 'water')


def write_scienceqa(root, n: int = 12, image_size: int = 32):
    """A small ScienceQA folder in the real layout; every bucket is represented."""
    import json

    from PIL import Image
    g = torch.Generator().manual_seed(1)
    problems, qids = {}, []
    for i in range(n):
        qid = str(100 + i)
        k = 2 + i % 3
        choices = [ANIMALS[(i + j) % len(ANIMALS)] for j in range(k)]
        has_image = i % 2 == 0
        problems[qid] = dict(
            question=f'which animal can {("fly", "swim", "run")[i % 3]}', choices=choices,
            answer=i % k, hint='the sun is red' if i % 3 == 0 else '',
            image='image.png' if has_image else None, subject=SUBJECTS[i % 3],
            grade=f'grade{1 + i % 12}', lecture='', solution='', split='test')
        qids.append(qid)
        if has_image:
            d = root / 'images' / 'test' / qid
            d.mkdir(parents=True)
            px = (torch.rand(image_size, image_size, 3, generator=g) * 255).to(torch.uint8)
            Image.fromarray(px.numpy()).save(d / 'image.png')
    (root / 'problems.json').write_text(json.dumps(problems))
    (root / 'pid_splits.json').write_text(json.dumps(dict(test=qids, train=[], val=[])))
    return root


@pytest.fixture(scope='session')
def sqa_root(tmp_path_factory):
    return write_scienceqa(tmp_path_factory.mktemp('sqa'))


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


#: Epochs of the quick demo's adapter training in the tests (the demo's config trains 4).
QUICK_EPOCHS = 3


@pytest.fixture(scope='session')
def quick_demo(tmp_path_factory) -> dict:
    """One quick demo per test session (tests/apps/demo): ``dict(work_dir, epochs, lines, lavin,
    text_only, chance)`` of a ``tools/demo.py --quick`` run in a fresh work dir as a user starts
    it (its own process), the lines it printed (stdout and stderr) and both presets' metrics."""
    from mma.apps.demo.run import chance_levels
    work_dir = tmp_path_factory.mktemp('quick_demo')
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, HF_HUB_OFFLINE='1')
    res = subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'tools', 'demo.py'), '--quick',
                          '--work-dir', str(work_dir), '--cfg-options',
                          f'train_cfg.max_epochs={QUICK_EPOCHS}'],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    out = dict(work_dir=work_dir, epochs=QUICK_EPOCHS, lines=(res.stdout + res.stderr).splitlines(),
               chance=chance_levels(str(work_dir / 'assets' / 'scienceqa')))
    for name in ('lavin', 'text_only'):
        with open(work_dir / name / 'demo_metrics.json') as f:
            out[name] = json.load(f)
    return out


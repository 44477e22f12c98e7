"""docs/extending.md's LLaMA-like family example, run as written: a plugin family file, a config
that imports it, and the check against transformers' own model."""
import os
import re
import subprocess
import sys

from test_extending import DOC, REPO

# the family section marks its files '# family file:' (the other examples' '# file:' blocks are
# tests/docs/test_extending.py's)
FAMILY_BLOCK = re.compile(r'```python\n# family file: (\S+)\n(.*?)```', re.S)


def family_files() -> dict:
    with open(DOC) as f:
        return dict(FAMILY_BLOCK.findall(f.read()))


def test_family_example_checks_and_builds(tmp_path):
    files = family_files()
    assert set(files) == {'my_mma_plugins/ministral.py', 'check_ministral.py',
                          'configs/my_experiments/lavin_ministral-8b_sqa.py'}
    assert 'register_family(' in files['my_mma_plugins/ministral.py']
    os.makedirs(tmp_path / 'configs')
    for name in os.listdir(os.path.join(REPO, 'configs')):  # the repository's configs alongside
        os.symlink(os.path.join(REPO, 'configs', name), tmp_path / 'configs' / name)
    for path, code in files.items():
        os.makedirs((tmp_path / path).parent, exist_ok=True)
        (tmp_path / path).write_text(code)
    (tmp_path / 'my_mma_plugins' / '__init__.py').write_text('')
    # `python check_ministral.py`, then the config built on the meta device (no weights here)
    build = (
        'import runpy, torch, mma; from mmengine.config import Config; '
        'runpy.run_path("check_ministral.py"); '
        'cfg = Config.fromfile("configs/my_experiments/lavin_ministral-8b_sqa.py"); '
        'dev = torch.device("meta"); dev.__enter__(); model = mma.build_model(cfg); '
        'print("trainable", sum(p.numel() for p in model.parameters() if p.requires_grad), '
        'model.llm.num_layers, model.llm.args.ffn_hidden_dim)')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(['.', REPO]), HF_HUB_OFFLINE='1',
               OMP_NUM_THREADS='1')
    res = subprocess.run([sys.executable, '-c', build], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    assert 'Ministral OK' in res.stdout
    d = 4096
    block = (d * 8 + 8) + 2 * (d * 4 + d) + (2 * d + 2)  # routed adapter: down, 2 ups, router
    vit = 24 * ((1024 * 8 + 8) + 2 * (1024 * 4 + 1024) + (2 * 1024 + 2))
    expected = 36 * block + vit + (1024 * 128 + 128 + 128 * d + d) + 2 * d
    assert f'trainable {expected} 36 12288' in res.stdout, res.stdout
    with open(DOC) as f:
        assert f'{expected:,} parameters' in f.read()  # the number the doc states

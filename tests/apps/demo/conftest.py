"""One quick demo run (``python tools/demo.py --quick``), made once per test session: its console,
metrics and work dir are checked by test_demo.py, and its assets (data, tokenizer, pretrained
backbones) and text-only preset serve the demo variants that share them."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
#: Epochs of the quick demo's adapter training in the tests (the demo's config trains 4).
QUICK_EPOCHS = 3


@pytest.fixture(scope='session')
def quick_demo(tmp_path_factory) -> dict:
    """``dict(work_dir, epochs, lines, lavin, text_only, chance)``: a ``tools/demo.py --quick`` run in a
    fresh work dir as a user starts it (its own process), the lines it printed (stdout and stderr)
    and the metrics of both presets."""
    from mma.apps.demo.run import chance_levels
    work_dir = tmp_path_factory.mktemp('quick_demo')
    env = dict(os.environ, PYTHONPATH=REPO, HF_HUB_OFFLINE='1')
    res = subprocess.run([sys.executable, os.path.join(REPO, 'tools', 'demo.py'), '--quick',
                          '--work-dir', str(work_dir), '--cfg-options',
                          f'train_cfg.max_epochs={QUICK_EPOCHS}'],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    out = dict(work_dir=work_dir, epochs=QUICK_EPOCHS, lines=(res.stdout + res.stderr).splitlines(),
               chance=chance_levels(str(work_dir / 'assets' / 'scienceqa')))
    for name in ('lavin', 'text_only'):
        with open(work_dir / name / 'demo_metrics.json') as f:
            out[name] = json.load(f)
    return out


"""`import mma` does not import transformers (mmengine.optim would, only to register Adafactor:
~4 s of every process start), and a config still builds transformers' Adafactor by name, with
the arguments it gives, whether or not transformers was imported before mma."""
import subprocess
import sys

import pytest

pytest.importorskip('transformers')

SCRIPT = '''
import sys
{first}
import mma, mma.engine
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner
print('transformers imported at start-up:', 'transformers' in sys.modules)
import torch
import transformers
model = torch.nn.Linear(3, 2)
cfg = dict(optimizer=dict(type='Adafactor', lr=1e-3, scale_parameter=False, relative_step=False,
                          warmup_init=False, weight_decay=0.01))
opt = build_optim_wrapper(model, cfg).optimizer
ref = transformers.Adafactor(torch.nn.Linear(3, 2).parameters(), lr=1e-3, scale_parameter=False,
                             relative_step=False, warmup_init=False, weight_decay=0.01)
assert type(opt) is transformers.Adafactor, type(opt)
assert opt.defaults == ref.defaults, (opt.defaults, ref.defaults)
assert [p for g in opt.param_groups for p in g['params']] == list(model.parameters())
print('ok')
'''


@pytest.mark.parametrize('first', ['', 'import transformers'])
def test_no_transformers_at_start_up_and_adafactor_builds(first):
    res = subprocess.run([sys.executable, '-c', SCRIPT.format(first=first)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f'transformers imported at start-up: {bool(first)}' in res.stdout, res.stdout
    assert res.stdout.rstrip().endswith('ok')

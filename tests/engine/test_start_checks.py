"""StartChecksHook (issue 14): a corrupt image stops training before the first step, over-long qids
are listed in the work dir, and a schedule that cannot train is a warning at start."""
import glob
import os
import re
import shutil
import sys

import pytest
import torch
from mmengine.config import Config
from mma.engine import MMARunner

sys.path.insert(0, os.path.dirname(__file__))
from _train_helpers import TINY_CFG, data_options, train_in_process  # noqa

from mma.datasets import DataValidationError
from mma.engine import lr_trajectory, schedule_warnings
from mma.engine.start_checks import OVERLONG_FILE
from mma.toy import make_tiny_scienceqa


@pytest.fixture(scope='module')
def sqa(tmp_path_factory):
    return make_tiny_scienceqa(str(tmp_path_factory.mktemp('start') / 'sqa'))


def test_schedule_warnings_of_the_tiny_schedule():
    cfg = Config.fromfile(TINY_CFG)
    sched, lr = cfg.param_scheduler, cfg.optim_wrapper.optimizer.lr
    assert all(s.convert_to_iter_based for s in sched)  # per-iteration schedules
    # 3 iterations per epoch: the 1-epoch warm-up ends, the cosine takes over: no warning
    assert schedule_warnings(sched, lr, 3, 18) == []
    lrs = lr_trajectory(sched, lr, 3, 18)
    assert lrs[0] == pytest.approx(lr * 1e-6) and max(lrs) == pytest.approx(lr)
    # 1 iteration per epoch: mmengine's chained cosine continues from the warm-up's 1e-6 * lr
    (msg,) = schedule_warnings(sched, lr, 1, 6)
    assert re.search(r'never leaves its floor: its peak over the 6 iterations \(1 per epoch\) is '
                     r'1e-08, under 0.1 x the configured 0.01', msg), msg
    # a run no longer than its warm-up
    msgs = schedule_warnings(sched, lr, 3, 3)
    assert msgs[0].startswith('the LinearLR warm-up ends at iteration 3, at or after the last '
                              'of the run (3 iterations of 3 per epoch)')


@pytest.mark.parametrize('split', ['train', 'test'])
def test_corrupt_image_stops_before_the_first_step(sqa, tmp_path, split):
    root = str(tmp_path / 'sqa')
    shutil.copytree(sqa['data_root'], root)
    bad = sorted(glob.glob(os.path.join(root, 'images', split, '*', 'image.png')))[-2:]
    for path in bad:
        open(path, 'wb').write(b'not a png')
    cfg = Config.fromfile(TINY_CFG)
    opts = dict(o.split('=', 1) for o in data_options(dict(sqa, data_root=root)))
    cfg.merge_from_dict(dict(opts, work_dir=str(tmp_path / 'w')))
    runner = MMARunner.from_cfg(cfg)  # the configs' runner_type
    with pytest.raises(DataValidationError, match=rf'{split}_dataloader.dataset: 2 images cannot '
                       rf'be used:\n  cannot read image {bad[0]} \(sample \d+\).*\n  cannot read '
                       rf'image {bad[1]} '):
        runner.train() if split == 'train' else runner.test()
    assert runner.iter == 0


def test_one_iteration_epochs_warn_and_overlong_qids_listed(sqa, tmp_path):
    """The tiny config with a batch of the whole split: the warning, and the learning rates
    mmengine logs are those :func:`lr_trajectory` computed."""
    torch.set_num_threads(1)
    wd = str(tmp_path / 'w')
    train_in_process([TINY_CFG, '--work-dir', wd, '--cfg-options'] + data_options(sqa) + [
        'train_cfg.max_epochs=3', 'train_dataloader.batch_size=12',
        'train_dataloader.dataset.pipeline.1.max_len=72',
        "train_dataloader.dataset.pipeline.1.overlong='skip'"])
    (log,) = glob.glob(os.path.join(wd, '*', '*.log'))
    text = open(log).read()
    assert re.search(r'StartChecksHook: the learning rate never leaves its floor: its peak over '
                     r'the 3 iterations \(1 per epoch\)', text)
    logged = [float(x) for x in re.findall(r'Epoch\(train\) +\[\d\]\[1/1\] .*? lr: (\S+)', text)]
    cfg = Config.fromfile(TINY_CFG)
    assert logged == pytest.approx(lr_trajectory(cfg.param_scheduler, 1e-2, 1, 3), rel=1e-3)
    lines = open(os.path.join(wd, OVERLONG_FILE)).read().splitlines()
    skipped = re.search(r'\d+ skipped (\[.*?\])', text).group(1)
    assert lines[0] == 'policy\tdataset\tqid' and len(lines) > 1
    assert [ln.split('\t')[2] for ln in lines[1:]] == eval(skipped)  # the warning's first 10
    assert all(ln.startswith('skipped\tScienceQADataset\t') for ln in lines[1:])


def test_bf16_on_a_cpu_without_native_bf16_is_a_warning(monkeypatch):
    from mma.engine import SkipNonFiniteCPUAmpOptimWrapper, SkipNonFiniteOptimWrapper
    from mma.engine.start_checks import cpu_bf16_warning
    model = torch.nn.Linear(4, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    amp, fp32 = (cls(optimizer=opt) for cls in (SkipNonFiniteCPUAmpOptimWrapper,
                                                 SkipNonFiniteOptimWrapper))
    msg = cpu_bf16_warning(model, amp, capability='AVX2')
    assert "get_cpu_capability() = 'AVX2'" in msg and 'drop --amp' in msg and '30x' in msg
    assert cpu_bf16_warning(model, amp, capability='AVX512') is None
    assert cpu_bf16_warning(model, fp32, capability='AVX2') is None  # fp32: nothing to say
    # the default reads torch's own capability (mocked here)
    monkeypatch.setattr(torch.backends.cpu, 'get_cpu_capability', lambda: 'AVX2')
    assert cpu_bf16_warning(model, amp) == msg
    frozen = torch.nn.Linear(4, 4).to(torch.bfloat16)  # bf16 frozen weights, no autocast
    assert 'model.frozen_dtype' in cpu_bf16_warning(frozen, fp32)

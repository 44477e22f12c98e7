"""Faults lose nothing: SIGKILL during training and during a checkpoint save, then ``--resume``,
gives the weights of an uninterrupted run; a failed save leaves the previous checkpoint."""
import errno
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.fileio.backends import LocalBackend

sys.path.insert(0, os.path.dirname(__file__))
from _train_helpers import REPO, TINY_CFG, data_options, load_state, train_in_process  # noqa

from mma.engine import atomic_write
from mma.toy import make_tiny_scienceqa

HERE = os.path.dirname(os.path.abspath(__file__))
EPOCHS = 3  # 12 samples, batch 4: 3 iterations per epoch


@pytest.fixture(scope='module')
def sqa(tmp_path_factory):
    return make_tiny_scienceqa(str(tmp_path_factory.mktemp('atomic') / 'sqa'))


@pytest.fixture(scope='module')
def straight(sqa, tmp_path_factory):
    """The uninterrupted run (production config, every checkpoint kept)."""
    torch.set_num_threads(1)
    wd = str(tmp_path_factory.mktemp('straight'))
    train_in_process([TINY_CFG, '--work-dir', wd, '--cfg-options'] + data_options(sqa) +
                     [f'train_cfg.max_epochs={EPOCHS}',
                      'default_hooks.checkpoint.max_keep_ckpts=5'])
    return wd


def _pointer(wd: str) -> str:
    with open(os.path.join(wd, 'last_checkpoint')) as f:
        return f.read()


def _start(cfg: str, wd: str, sqa: dict, fault: str, resume: bool, extra=()) -> tuple:
    tag = fault.replace(':', '-') or 'end'
    ready = os.path.join(os.path.dirname(wd), f'ready-{tag}')  # outside the work dir
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, HERE]), HF_HUB_OFFLINE='1',
               OMP_NUM_THREADS='1', MMA_TEST_FAULT=fault, MMA_TEST_FAULT_READY=ready)
    cmd = [sys.executable, os.path.join(REPO, 'tools', 'train.py'), cfg, '--work-dir', wd]
    cmd += ['--resume'] * resume + ['--cfg-options'] + data_options(sqa) + [
        f'train_cfg.max_epochs={EPOCHS}'] + list(extra)
    log = open(os.path.join(os.path.dirname(wd), f'stdout-{tag}.txt'), 'w')
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, ready, log.name


def _kill_when_ready(proc, ready: str, log: str, timeout: float = 120) -> None:
    t0 = time.time()
    while not os.path.exists(ready):
        if proc.poll() is not None or time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError(f'the run did not reach its fault point:\n'
                                 f'{open(log).read()[-4000:]}')
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL


@pytest.mark.slow
def test_sigkill_in_training_and_in_a_save_then_resume_is_bitwise(sqa, straight, tmp_path):
    cfg = tmp_path / 'tiny_faults.py'
    # max_keep_ckpts=1: mmengine's own hook would delete epoch_1.pth before writing epoch_2.pth
    cfg.write_text(
        f'_base_ = [{TINY_CFG!r}]\n'
        "custom_imports = dict(imports=['_fault_injection'], allow_failed_imports=False)\n"
        "default_hooks = dict(checkpoint=dict(type='StopInSaveCheckpointHook', max_keep_ckpts=1))\n"
        "custom_hooks = [dict(type='TrainableCheckpointHook'), dict(type='PerIterationSeedHook'),\n"
        "                dict(type='StopAtIterHook')]\n")
    wd = str(tmp_path / 'w')
    os.makedirs(wd)
    epoch1, epoch2 = os.path.join(wd, 'epoch_1.pth'), os.path.join(wd, 'epoch_2.pth')

    # 1. killed during training: iteration 5 of 9 (epoch 2) is done, epoch_1.pth is the last save
    proc, ready, log = _start(str(cfg), wd, sqa, 'iter:5', resume=False)
    _kill_when_ready(proc, ready, log)
    assert _pointer(wd) == epoch1 and not os.path.exists(epoch2)

    # 2. resumed, then killed while epoch_2.pth is being written
    proc, ready, log = _start(str(cfg), wd, sqa, 'save:epoch_2.pth', resume=True)
    _kill_when_ready(proc, ready, log)
    assert 'resumed epoch: 1' in open(log).read()
    partial = os.path.join(wd, '.tmp-epoch_2.pth')
    with pytest.raises(Exception):  # the kill landed in the middle of the save
        torch.load(partial, map_location='cpu', weights_only=False)
    assert not os.path.exists(epoch2)
    assert _pointer(wd) == epoch1  # still names a complete checkpoint ...
    one = torch.load(epoch1, map_location='cpu', weights_only=False)  # ... that loads
    assert one['meta']['epoch'] == 1
    assert all(torch.equal(v, load_state(os.path.join(straight, 'epoch_1.pth'))[k])
               for k, v in one['state_dict'].items())

    # 3. resumed again, runs to the end: the uninterrupted run's weights, bit for bit
    proc, _, log = _start(str(cfg), wd, sqa, '', resume=True)
    assert proc.wait(120) == 0, open(log).read()[-4000:]
    a = load_state(os.path.join(straight, f'epoch_{EPOCHS}.pth'))
    b = load_state(os.path.join(wd, f'epoch_{EPOCHS}.pth'))
    assert a.keys() == b.keys() and len(a) > 0
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], one['state_dict'][k]) for k in a)  # epochs 2-3 trained
    assert _pointer(wd) == os.path.join(wd, f'epoch_{EPOCHS}.pth')
    # the killed save's leftover is gone; max_keep_ckpts=1 pruned the older checkpoints
    assert sorted(f for f in os.listdir(wd) if f.endswith('.pth') or f.startswith('.')) == [
        f'epoch_{EPOCHS}.pth']


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_with_dropout_is_bitwise(sqa, tmp_path):
    """Checkpoints every 2 iterations (3 per epoch): the run is killed after iteration 5, its
    last checkpoint is iter_4.pth, taken after the first batch of epoch 2. Resuming must skip
    that batch and draw the dropout masks the uninterrupted run drew (per-iteration seeding)."""
    cfg = tmp_path / 'tiny_mid_epoch.py'
    cfg.write_text(
        f'_base_ = [{TINY_CFG!r}]\n'
        "custom_imports = dict(imports=['_fault_injection'], allow_failed_imports=False)\n"
        "default_hooks = dict(checkpoint=dict(by_epoch=False, interval=2, max_keep_ckpts=5))\n"
        "custom_hooks = [dict(type='TrainableCheckpointHook'), dict(type='PerIterationSeedHook'),\n"
        "                dict(type='StopAtIterHook')]\n")
    dropout = ['model.llm_adapter.dropout=0.3', 'model.vit_adapter.dropout=0.3']
    last = f'iter_{3 * EPOCHS}.pth'
    runs = {}
    for name in ('straight', 'killed'):
        os.makedirs(tmp_path / name / 'w')
        runs[name] = str(tmp_path / name / 'w')
    proc, _, log = _start(str(cfg), runs['straight'], sqa, '', resume=False, extra=dropout)
    assert proc.wait(180) == 0, open(log).read()[-4000:]

    wd = runs['killed']
    proc, ready, log = _start(str(cfg), wd, sqa, 'iter:5', resume=False, extra=dropout)
    _kill_when_ready(proc, ready, log)
    assert _pointer(wd) == os.path.join(wd, 'iter_4.pth') and not os.path.exists(
        os.path.join(wd, last))
    proc, _, log = _start(str(cfg), wd, sqa, '', resume=True, extra=dropout)
    assert proc.wait(180) == 0, open(log).read()[-4000:]
    assert 'resumed epoch: 1, iter: 4' in open(log).read()  # mid-epoch: epoch 2 had begun
    a = load_state(os.path.join(runs['straight'], last))
    b = load_state(os.path.join(wd, last))
    four = load_state(os.path.join(wd, 'iter_4.pth'))
    assert a.keys() == b.keys() and len(a) > 0
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], four[k]) for k in a)  # iterations 5-9 trained


def test_failed_save_keeps_previous_checkpoint_and_pointer(sqa, straight, tmp_path, monkeypatch):
    put = LocalBackend.put

    def disk_full(self, obj, filepath):
        if 'epoch_2' in os.path.basename(filepath):
            put(self, obj[:len(obj) // 3], filepath)  # part of it reached the disk
            raise OSError(errno.ENOSPC, 'No space left on device', filepath)
        put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', disk_full)
    wd = str(tmp_path / 'w')
    opts = data_options(sqa) + ['train_cfg.max_epochs=2',
                                'default_hooks.checkpoint.max_keep_ckpts=1']
    with pytest.raises(OSError, match='No space left'):
        train_in_process([TINY_CFG, '--work-dir', wd, '--cfg-options'] + opts)
    epoch1 = os.path.join(wd, 'epoch_1.pth')
    assert _pointer(wd) == epoch1
    assert sorted(f for f in os.listdir(wd) if f.endswith('.pth') or f.startswith('.')) == [
        'epoch_1.pth']  # no partial epoch_2.pth, no temporary file, epoch_1.pth not pruned
    ckpt = torch.load(epoch1, map_location='cpu', weights_only=False)
    assert ckpt['meta']['epoch'] == 1 and {'optimizer', 'param_schedulers'} <= set(ckpt)

    # the disk has room again: resuming from the kept checkpoint gives the straight run's epoch 2
    monkeypatch.setattr(LocalBackend, 'put', put)
    train_in_process([TINY_CFG, '--work-dir', wd, '--resume', '--cfg-options'] + opts)
    a = load_state(os.path.join(straight, 'epoch_2.pth'))
    b = load_state(os.path.join(wd, 'epoch_2.pth'))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_atomic_write_keeps_old_content_when_the_write_fails(tmp_path, monkeypatch):
    path = str(tmp_path / 'last_checkpoint')
    atomic_write('/runs/epoch_1.pth', path)
    assert open(path).read() == '/runs/epoch_1.pth'

    def fail(*args):
        raise OSError(errno.EIO, 'I/O error')

    monkeypatch.setattr(os, 'replace', fail)
    with pytest.raises(OSError):
        atomic_write('/runs/epoch_2.pth', path)
    assert open(path).read() == '/runs/epoch_1.pth'
    assert os.listdir(tmp_path) == ['last_checkpoint']

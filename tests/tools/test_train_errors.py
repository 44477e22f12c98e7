"""tools/train.py and tools/test.py on bad input (issue 14): one paragraph and exit status 2 for a
data, file or config error (the traceback with --debug / MMA_DEBUG=1, and always for a bug); no run
lost: --resume with nothing to resume and a work dir holding checkpoints are refused."""
import importlib.util
import os
import subprocess
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'engine'))
from _train_helpers import REPO, TINY_CFG, data_options, env, train_in_process  # noqa

from mma.errors import MMAUserError
from mma.toy import make_tiny_scienceqa


@pytest.fixture(scope='module')
def sqa(tmp_path_factory):
    return make_tiny_scienceqa(str(tmp_path_factory.mktemp('errors') / 'sqa'))


def _fails(argv, capsys) -> str:
    """Run tools/train.py in-process; it must exit with status 2; returns its stderr."""
    with pytest.raises(SystemExit) as exc:
        train_in_process(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('tools/train.py: error: ') and 'Traceback' not in err
    return err


def test_resume_with_nothing_to_resume_is_an_error(sqa, tmp_path, capsys):
    wd = str(tmp_path / 'w')
    err = _fails([TINY_CFG, '--work-dir', wd, '--resume', '--cfg-options'] + data_options(sqa),
                 capsys)
    assert (f'--resume: nothing to resume in work dir {wd}: {wd}/last_checkpoint does not '
            'exist') in err
    assert 'Drop --resume to start a new run' in err
    assert not os.path.exists(os.path.join(wd, 'epoch_1.pth'))  # no fresh run started


@pytest.mark.parametrize('content,says', [('', 'is empty'),
                                          ('\x00garbage', "names '\\x00garbage', which is not")])
def test_empty_or_garbage_last_checkpoint(sqa, tmp_path, capsys, content, says):
    wd = tmp_path / 'w'
    wd.mkdir()
    (wd / 'last_checkpoint').write_text(content)
    (wd / 'epoch_1.pth').write_bytes(b'')
    err = _fails([TINY_CFG, '--work-dir', str(wd), '--resume', '--cfg-options'] +
                 data_options(sqa), capsys)
    assert f'--resume: {wd}/last_checkpoint {says}' in err
    # the checkpoint files there, not the last_checkpoint pointer
    assert f"Pass --resume FILE with one of ['{wd}/epoch_1.pth']" in err
    (wd / 'epoch_1.pth').unlink()
    err = _fails([TINY_CFG, '--work-dir', str(wd), '--resume', '--cfg-options'] +
                 data_options(sqa), capsys)
    assert 'No checkpoint file (epoch_*.pth, iter_*.pth) is there either: drop --resume' in err
    assert 'last_checkpoint]' not in err


def test_truncated_resume_checkpoint_is_named(sqa, tmp_path, capsys):
    ckpt = tmp_path / 'epoch_3.pth'
    torch.save({'meta': {}, 'state_dict': {'x': torch.zeros(1000)}}, ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:500])
    err = _fails([TINY_CFG, '--work-dir', str(tmp_path / 'w'), '--resume', str(ckpt),
                  '--cfg-options'] + data_options(sqa), capsys)
    assert f'cannot read {ckpt} as an mmengine training checkpoint (RuntimeError: ' in err


def test_work_dir_with_checkpoints_needs_resume_or_overwrite(sqa, tmp_path, capsys):
    wd = tmp_path / 'w'
    wd.mkdir()
    (wd / 'epoch_1.pth').write_bytes(b'an earlier run')
    (wd / 'epoch_9.pth').write_bytes(b'an earlier run')
    (wd / 'last_checkpoint').write_text(str(wd / 'epoch_9.pth'))
    argv = [TINY_CFG, '--work-dir', str(wd), '--cfg-options'] + data_options(sqa) + [
        'train_cfg.max_epochs=1']
    err = _fails(argv, capsys)
    assert (f"work dir {wd} already holds checkpoints of a run (['epoch_1.pth', 'epoch_9.pth', "
            "'last_checkpoint']); a new run "
            'would overwrite them. Pass --resume to continue that run, --overwrite to start '
            'again and replace them, or another --work-dir') in err
    assert (wd / 'epoch_1.pth').read_bytes() == b'an earlier run'
    with pytest.warns(UserWarning, match=r"--overwrite: a new run in .*\['epoch_1.pth', "
                      r"'epoch_9.pth', 'last_checkpoint'\]"):
        train_in_process([TINY_CFG, '--work-dir', str(wd), '--overwrite'] + argv[3:])
    assert torch.load(wd / 'epoch_1.pth', weights_only=False)['meta']['epoch'] == 1
    assert (wd / 'last_checkpoint').read_text() == str(wd / 'epoch_1.pth')  # not the old run's


def test_debug_shows_the_error_and_bugs_keep_their_traceback(sqa, tmp_path, monkeypatch):
    argv = [TINY_CFG, '--work-dir', str(tmp_path / 'w'), '--resume', '--cfg-options'] + \
        data_options(sqa)
    with pytest.raises(MMAUserError, match='nothing to resume'):
        train_in_process(argv[:1] + ['--debug'] + argv[1:])
    from mmengine.runner import Runner

    def bug(*args, **kwargs):
        raise ZeroDivisionError('a bug')

    monkeypatch.setattr(Runner, 'from_cfg', bug)
    with pytest.raises(ZeroDivisionError):  # not a user error: no paragraph, no exit 2
        train_in_process([TINY_CFG, '--work-dir', str(tmp_path / 'w2'), '--cfg-options'] +
                         data_options(sqa))


def test_cli_paragraph_and_exit_status(sqa, tmp_path, capsys, monkeypatch):
    """The real command line once (exit status 2, no traceback); a config error in-process: a
    misspelt component type, whose paragraph lists the registered ones."""
    cmd = [sys.executable, os.path.join('tools', 'train.py'), TINY_CFG, '--work-dir',
           str(tmp_path / 'w'), '--resume', '--cfg-options'] + data_options(sqa)
    res = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr[-3000:]
    assert res.stderr.startswith('tools/train.py: error: --resume: nothing to resume')
    assert 'Traceback' not in res.stderr and len(res.stderr.splitlines()) == 2
    err = _fails([TINY_CFG, '--work-dir', str(tmp_path / 'w'), '--cfg-options'] +
                 data_options(sqa) + ['model.type=LaVln'], capsys)
    assert 'LaVln is not in the' in err and 'Registered model types: ' in err and 'LaVIN' in err
    monkeypatch.setenv('MMA_DEBUG', '1')
    with pytest.raises(KeyError, match='LaVln is not in the'):
        train_in_process([TINY_CFG, '--work-dir', str(tmp_path / 'w'), '--cfg-options'] +
                         data_options(sqa) + ['model.type=LaVln'])


def test_test_tool_missing_checkpoint(sqa, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location('mma_tools_test',
                                                  os.path.join(REPO, 'tools', 'test.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(SystemExit) as exc:
        mod.main([TINY_CFG, missing, '--work-dir', str(tmp_path / 't'), '--cfg-options'] +
                 data_options(sqa))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('tools/test.py: error: ') and missing in err and 'Traceback' not in err

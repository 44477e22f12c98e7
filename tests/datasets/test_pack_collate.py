"""mma_pack_collate through tools/train.py: one epoch on packed rows ends with the padded run's
adapter weights (same batches, losses and gradients; only the padding goes)."""
import os
import sys

import pytest
import torch

from mma.datasets import mma_pack_collate
from mma.sequence import pack

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'engine'))
from _train_helpers import TINY_CFG, data_options, load_state, train_in_process  # noqa

from mma.toy import make_tiny_scienceqa


def test_collate_marks_the_batch_and_checks_its_arguments():
    rows = [dict(inputs=pack([1], [5], [6, 7], [8, 2], False), data_samples={})]
    out = mma_pack_collate(rows, max_tokens=64)['inputs']
    assert out['pack_max_tokens'] == 64 and out['pack_mask'] == 'auto'
    assert out['input_ids'].tolist() == [[1, 5, 6, 7, 8, 2]]
    with pytest.raises(ValueError, match='max_tokens'):
        mma_pack_collate(rows, max_tokens=0)
    with pytest.raises(ValueError, match='mask'):
        mma_pack_collate(rows, mask='xformers')


def test_packed_training_run_equals_the_padded_run(tmp_path):
    sqa = make_tiny_scienceqa(str(tmp_path / 'sqa'))
    states = {}
    for name, extra in (('padded', []),
                        ('packed', ['train_dataloader.collate_fn.type=mma_pack_collate',
                                    'train_dataloader.collate_fn.max_tokens=256'])):
        wd = str(tmp_path / name)
        train_in_process([TINY_CFG, '--work-dir', wd, '--cfg-options'] + data_options(sqa) +
                         ['train_cfg.max_epochs=1', 'max_epochs=1'] + extra)
        states[name] = load_state(os.path.join(wd, 'epoch_1.pth'))
    assert states['packed'].keys() == states['padded'].keys()
    for k, v in states['padded'].items():
        torch.testing.assert_close(states['packed'][k], v, atol=2e-5, rtol=0, msg=k)

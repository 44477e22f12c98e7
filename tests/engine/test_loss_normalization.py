"""Partition invariance: one optimiser step gives the same adapter weights however the global
batch of 4 is split (1 x 4, 1 x 2 x accumulation 2, 2 gloo processes x 2), with the epoch-based
and with the iteration-based token-mean loop."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _train_helpers import TINY_CFG, data_options, load_state, torchrun, train_in_process  # noqa

from mma.toy import make_tiny_scienceqa

ONE_STEP_CFG = """
_base_ = ['{tiny}']
max_epochs = 1
train_cfg = dict(max_epochs=1)
param_scheduler = []
optim_wrapper = dict(optimizer=dict(_delete_=True, type='SGD', lr=1.0, momentum=0.0,
                                    weight_decay=0.0))
train_dataloader = dict(sampler=dict(shuffle=False), dataset=dict(indices={indices}))
"""


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('inv')
    sqa = make_tiny_scienceqa(str(root / 'sqa'))
    # two short answers then two long ones: per-micro-batch means weight tokens unequally
    from mma.datasets import ScienceQADataset, TokenizeForLaVIN
    from mma.llms.tokenizer import SentencePieceTokenizer
    tok = TokenizeForLaVIN(SentencePieceTokenizer(sqa['tokenizer']), num_visual_tokens=2)
    ds = ScienceQADataset(sqa['data_root'], pipeline=[tok])
    n_ans = [tok.measure(ds.get_data_info(i))[2] for i in range(len(ds))]
    order = sorted(range(len(ds)), key=lambda i: n_ans[i])
    indices = order[:2] + order[-2:]
    assert n_ans[order[0]] + n_ans[order[1]] < n_ans[order[-1]] + n_ans[order[-2]]
    cfg = root / 'one_step.py'
    cfg.write_text(ONE_STEP_CFG.format(tiny=TINY_CFG, indices=indices))
    return root, sqa, str(cfg)


def _run(setup, name, opts, nproc=1, checkpoint='epoch_1.pth', cfg=None):
    root, sqa, one_step = setup
    wd = str(root / name)
    args = [cfg or one_step, '--work-dir', wd, '--cfg-options'] + data_options(sqa) + opts
    if nproc == 1:
        train_in_process(args)
    else:
        torchrun(nproc, args)
    return load_state(os.path.join(wd, checkpoint))


def _iter_based(setup, name: str, loop: str) -> dict:
    """Two iterations of batch 2 with accumulation 2 (one optimiser step) with ``loop``."""
    root, _, one_step = setup
    cfg = root / 'one_step_iter.py'
    cfg.write_text(f"_base_ = ['{one_step}']\n"
                   "train_cfg = dict(_delete_=True, type='TokenMeanIterBasedTrainLoop', "
                   "max_iters=2)\n"
                   "default_hooks = dict(checkpoint=dict(by_epoch=False))\n"
                   "log_processor = dict(_delete_=True, by_epoch=False)\n")
    opts = ['train_dataloader.batch_size=2', 'optim_wrapper.accumulative_counts=2',
            f'train_cfg.type={loop}']
    return _run(setup, name, opts, checkpoint='iter_2.pth', cfg=str(cfg))


def test_partition_invariance(setup):
    torch.set_num_threads(1)
    init = _run(setup, 'init', ['optim_wrapper.optimizer.lr=0.0'])
    a = _run(setup, 'a', ['train_dataloader.batch_size=4'])
    b = _run(setup, 'b', ['train_dataloader.batch_size=2', 'optim_wrapper.accumulative_counts=2'])
    c = _run(setup, 'c', ['train_dataloader.batch_size=2'], nproc=2)
    naive = _run(setup, 'naive', ['train_dataloader.batch_size=2',
                                  'optim_wrapper.accumulative_counts=2',
                                  'train_cfg.type=EpochBasedTrainLoop'])
    delta = {k: a[k] - init[k] for k in a}
    scale = max(d.abs().max() for d in delta.values())
    assert scale > 1e-3  # the step moved the adapters

    def rel_err(x):
        return max((x[k] - a[k]).abs().max() for k in a) / scale

    assert rel_err(b) < 1e-5
    assert rel_err(c) < 1e-5
    # mmengine's default loop (per-micro-batch token mean) depends on the split
    assert rel_err(naive) > 1e-3
    # the iteration-based loop: the same step as the epoch-based one; mmengine's is not
    d = _iter_based(setup, 'iter', 'TokenMeanIterBasedTrainLoop')
    naive_iter = _iter_based(setup, 'naive_iter', 'IterBasedTrainLoop')
    assert rel_err(d) < 1e-5
    assert rel_err(naive_iter) > 1e-3


def test_windows_follow_the_optim_wrapper_including_a_short_last_one():
    from mmengine.optim import OptimWrapper

    from mma.engine.loops import token_mean_batches
    p = torch.nn.Parameter(torch.zeros(1))
    ow = OptimWrapper(torch.optim.SGD([p], lr=0.1), accumulative_counts=3)
    ow.initialize_count_status(torch.nn.Linear(1, 1), 0, 7)  # windows of 3, 3 and 1 batches
    counts = [2, 5, 1, 4, 4, 3, 6]
    batches = []
    for n in counts:
        labels = torch.full((1, 8), -100)
        labels[0, :n] = 1
        batches.append(dict(inputs=dict(labels=labels)))
    seen = []
    for b in token_mean_batches(iter(batches), ow, world_size=1):
        factor = ow.scale_loss(torch.tensor(1.0))  # what mmengine divides this loss by
        # the scaled normaliser of each micro-batch is its window's token count
        seen.append(float(b['inputs']['num_loss_tokens'] / factor))
        ow._inner_count += 1  # as OptimWrapper.backward does
    assert seen == [8.0] * 3 + [11.0] * 3 + [6.0]

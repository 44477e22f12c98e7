"""Trainable-only checkpoints, bitwise resume, activation checkpointing, non-finite steps."""
import os
import shutil
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _train_helpers import TINY_CFG, data_options, load_state, train_in_process  # noqa


from mma.builder import build_model
from mma.engine import NonFiniteLossError, SkipNonFiniteOptimWrapper, trainable_keys
from mma.models import check_adapter_keys
from mma.toy import make_tiny_scienceqa, tiny_lavin_cfg


@pytest.fixture(scope='module')
def sqa(tmp_path_factory):
    return make_tiny_scienceqa(str(tmp_path_factory.mktemp('ckpt') / 'sqa'))


def test_resume_is_bitwise_and_checkpoint_holds_only_trainable(sqa, tmp_path):
    torch.set_num_threads(1)
    # dropout on (per-iteration seeding must make the resumed masks equal), accumulation 2 over
    # 3 iterations per epoch (windows restart every epoch)
    opts = data_options(sqa) + ['model.llm_adapter.dropout=0.1', 'model.vit_adapter.dropout=0.1',
                                'optim_wrapper.accumulative_counts=2', 'train_cfg.max_epochs=4',
                                'train_dataloader.batch_size=2', 'train_dataloader.dataset.indices=6',
                                'default_hooks.checkpoint.max_keep_ckpts=4']
    straight = str(tmp_path / 'straight')
    train_in_process([TINY_CFG, '--work-dir', straight, '--cfg-options'] + opts)
    resumed = str(tmp_path / 'resumed')
    os.makedirs(resumed)
    shutil.copy(os.path.join(straight, 'epoch_2.pth'), resumed)
    train_in_process([TINY_CFG, '--work-dir', resumed, '--resume',
                      os.path.join(resumed, 'epoch_2.pth'), '--cfg-options'] + opts)
    a = load_state(os.path.join(straight, 'epoch_4.pth'))
    b = load_state(os.path.join(resumed, 'epoch_4.pth'))
    two = load_state(os.path.join(straight, 'epoch_2.pth'))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], two[k]) for k in a)  # epochs 3-4 changed the weights

    model = build_model(tiny_lavin_cfg(vocab_size=512))
    expected = model.trainable_names()
    assert set(a) == expected  # every trainable tensor, no frozen one
    assert expected == {n for n, p in model.named_parameters() if p.requires_grad}
    ckpt = torch.load(os.path.join(straight, 'epoch_4.pth'), map_location='cpu',
                      weights_only=False)
    assert {'optimizer', 'param_schedulers', 'meta', 'message_hub'} <= set(ckpt)
    assert ckpt['meta']['epoch'] == 4 and ckpt['meta']['iter'] == 12


def test_loading_rejects_frozen_unknown_or_missing_keys():
    model = build_model(tiny_lavin_cfg(vocab_size=512))
    keys = trainable_keys(model)
    sd = {k: v for k, v in model.state_dict().items() if k in keys}
    check_adapter_keys(sd, keys)
    with pytest.raises(KeyError, match='frozen'):
        check_adapter_keys(dict(sd, **{'llm.norm.weight': torch.ones(64)}), keys)
    with pytest.raises(KeyError, match='unexpected'):
        check_adapter_keys(dict(sd, **{'llm.layers.0.adapter_x.w': torch.ones(1)}), keys)
    sd.pop(sorted(sd)[0])
    with pytest.raises(KeyError, match='1 missing'):
        check_adapter_keys(sd, keys)


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 500, (3, 40), generator=g)
    labels = torch.full_like(ids, -100)
    labels[:, 25:] = ids[:, 25:]
    return dict(input_ids=ids, labels=labels, has_image=torch.tensor([True, False, True]),
                visual_pos=torch.tensor([3, 0, 3]), images=torch.randn(2, 3, 32, 32, generator=g))


def test_activation_checkpointing_same_loss_and_grads():
    torch.manual_seed(0)
    model = build_model(tiny_lavin_cfg(vocab_size=512))
    with torch.no_grad():  # non-zero adapters so that every trainable tensor gets a gradient
        for n, p in model.named_parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    model.train()
    out = {}
    for ckpt in (False, True):
        model.llm.gradient_checkpointing = ckpt
        model.zero_grad()
        loss = model(_batch(), mode='loss')['loss']
        loss.backward()
        out[ckpt] = (loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                     if p.requires_grad})
    assert torch.equal(out[False][0], out[True][0])
    assert all(g.abs().sum() > 0 for g in out[False][1].values())
    for n, g in out[False][1].items():
        torch.testing.assert_close(out[True][1][n], g, rtol=1e-6, atol=1e-7)


def test_nonfinite_step_is_skipped_and_counted():
    p = torch.nn.Parameter(torch.ones(3))
    ow = SkipNonFiniteOptimWrapper(optimizer=torch.optim.SGD([p], lr=0.1))
    ow.update_params((p * torch.tensor([1.0, float('nan'), 1.0])).sum())
    assert torch.equal(p.detach(), torch.ones(3)) and ow.nonfinite_steps == 1
    assert p.grad is None or not p.grad.any()
    ow.update_params(p.sum())
    assert torch.allclose(p.detach(), torch.full((3,), 0.9)) and ow.nonfinite_steps == 1
    state = ow.state_dict()
    ow2 = SkipNonFiniteOptimWrapper(optimizer=torch.optim.SGD([p], lr=0.1))
    ow2.load_state_dict(state)
    assert ow2.nonfinite_steps == 1


def test_persistent_nonfinite_loss_stops_training_with_a_clear_message():
    p = torch.nn.Parameter(torch.ones(3))
    ow = SkipNonFiniteOptimWrapper(optimizer=torch.optim.SGD([p], lr=0.1),
                                   max_consecutive_nonfinite=3)
    nan = lambda: (p * float('nan')).sum()  # noqa: E731
    ow.update_params(nan())
    ow.update_params(nan())
    ow.update_params(p.sum())  # a finite step resets the run of skipped steps
    assert ow.consecutive_nonfinite == 0 and ow.nonfinite_steps == 2
    ow.update_params(nan())
    ow.update_params(nan())
    with pytest.raises(NonFiniteLossError, match=r'the last 3 optimizer steps all had non-finite '
                       r'gradients \(NaN/inf loss; 5 skipped in total\).*'
                       r'optim_wrapper.max_consecutive_nonfinite \(now 3\)'):
        ow.update_params(nan())
    assert torch.allclose(p.detach(), torch.full((3,), 0.9))  # only the finite step applied
    # configurable from the config: the default stops after 20; 0 never stops
    assert SkipNonFiniteOptimWrapper(torch.optim.SGD([p], lr=0.1)).max_consecutive_nonfinite == 20
    never = SkipNonFiniteOptimWrapper(torch.optim.SGD([p], lr=0.1), max_consecutive_nonfinite=0)
    for _ in range(25):
        never.update_params(nan())
    assert never.nonfinite_steps == 25

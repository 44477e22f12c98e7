"""tools/analyze_logs.py and tools/plot_routing.py on a tiny run; the TensorBoard switch."""
import glob
import importlib.util
import json
import os
import sys
import warnings

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'engine'))
from _train_helpers import REPO, TINY_CFG, data_options, train_in_process  # noqa

import mma
from mma.models import read_adapter_state_dict
from mma.toy import make_tiny_scienceqa
from mma.apps.visualization import load_scalars, router_weights

BLUE, ORANGE = (31, 119, 180), (255, 127, 14)  # matplotlib's tab:blue, tab:orange


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f'mma_tools_{name}',
                                                  os.path.join(REPO, 'tools', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _pixels(path: str) -> np.ndarray:
    img = np.asarray(Image.open(path).convert('RGB'))
    assert img.shape[0] > 200 and img.shape[1] > 200
    return img


def _count(img: np.ndarray, rgb) -> int:
    return int((np.abs(img.astype(int) - np.array(rgb)).sum(-1) < 30).sum())


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Two tiny runs (an 'ablation' on the learning rate), 3 epochs x 3 iterations."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp('plots')
    sqa = make_tiny_scienceqa(str(root / 'sqa'))
    out = {}
    for name, lr in (('lr_1e-2', 1e-2), ('lr_3e-2', 3e-2)):
        wd = str(root / name)
        # the first run also logs to TensorBoard (test_tensorboard_event_file_holds_the_scalars)
        train_in_process([TINY_CFG, '--work-dir', wd, '--cfg-options'] + data_options(sqa) + [
            'train_cfg.max_epochs=3', f'optim_wrapper.optimizer.lr={lr}',
            f'visualizer.tensorboard={name == "lr_1e-2"}'])
        out[name] = wd
    out['sqa'] = sqa
    return out


def test_load_scalars_reads_a_resumed_run_as_one(tmp_path):
    for stamp, recs in (('20260101_000000', [(1, 3.0), (2, 2.5), (3, 2.4)]),
                        ('20260101_010000', [(3, 2.2), (4, 2.0)])):  # resumed after step 2
        d = tmp_path / stamp / 'vis_data'
        d.mkdir(parents=True)
        lines = [json.dumps(dict(loss=v, lr=0.1 * s, step=s, epoch=1, iter=s)) for s, v in recs]
        lines.append(json.dumps({'scienceqa/Avg': 50.0, 'step': 1}))  # a validation record
        (d / 'scalars.json').write_text('\n'.join(lines) + '\n{"loss": 1.')  # cut by a kill
    curves = load_scalars(str(tmp_path))
    assert curves['loss'] == ([1, 2, 3, 4], [3.0, 2.5, 2.2, 2.0])
    assert curves['lr'][0] == [1, 2, 3, 4] and 'step' not in curves and 'iter' not in curves
    assert load_scalars(str(tmp_path), keys=['lr']).keys() == {'lr'}
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        load_scalars(str(tmp_path / 'nothing'))


def test_analyze_logs_overlays_runs(runs, tmp_path):
    runs = {k: v for k, v in runs.items() if k.startswith('lr_')}
    curves = {k: load_scalars(wd) for k, wd in runs.items()}
    for c in curves.values():
        assert c['loss'][0] == list(range(1, 10)) and len(c['lr'][1]) == 9
    assert curves['lr_3e-2']['lr'][1][3] == pytest.approx(3 * curves['lr_1e-2']['lr'][1][3])
    out = str(tmp_path / 'curves.png')
    _tool('analyze_logs').main(list(runs.values()) + ['--keys', 'loss', 'lr', '--out', out])
    img = _pixels(out)
    # both runs drawn (one colour each), on a white background
    assert _count(img, BLUE) > 300 and _count(img, ORANGE) > 300
    assert _count(img, (255, 255, 255)) > 0.5 * img.shape[0] * img.shape[1]
    with pytest.raises(KeyError, match='not logged'):
        _tool('analyze_logs').main([runs['lr_1e-2'], '--keys', 'no_such_key', '--out', out])


def test_plot_routing_from_a_trained_checkpoint(runs, tmp_path):
    wd = runs['lr_3e-2']
    ckpt = os.path.join(wd, 'epoch_3.pth')
    opts = ['--cfg-options', 'model.llm.vocab_size=512',
            f"model.tokenizer.model_path={runs['sqa']['tokenizer']}"]
    tool = _tool('plot_routing')
    out = str(tmp_path / 'routing.png')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        tool.main([TINY_CFG, ckpt, '--out', out] + opts)
    # mma's own training checkpoint loads with weights_only=True: nothing unpickled fully
    assert not [w for w in caught if 'unpickling' in str(w.message)]
    img = _pixels(out)
    assert _count(img, BLUE) > 1000 and _count(img, ORANGE) > 1000  # image / text-only bars

    # the weights drawn are the trained model's: the same frozen weights as the Runner builds
    # (the resume tests show those are the training run's), the checkpoint's adapters
    cfg = Config.fromfile(TINY_CFG)
    cfg.merge_from_dict({'model.llm.vocab_size': 512,
                         'model.tokenizer.model_path': runs['sqa']['tokenizer']})
    model = mma.load_model(cfg, ckpt)
    from mma.engine import MMARunner
    cfg.work_dir = str(tmp_path / 'runner')
    cfg.visualizer = None
    ref = MMARunner.from_cfg(cfg).model  # the configs' runner_type
    ref.init_weights()
    untrained = router_weights(ref)
    ref.load_state_dict(read_adapter_state_dict(ckpt), strict=False)
    sd, ref_sd = model.state_dict(), ref.state_dict()
    assert sd.keys() == ref_sd.keys() and all(torch.equal(sd[k], ref_sd[k]) for k in ref_sd)
    weights = router_weights(model)
    assert list(weights) == ['layers.0.adapter_attn', 'layers.1.adapter_attn']
    for name, w in weights.items():  # (modality, expert): distributions, modalities differ
        assert w.shape == (2, 2) and torch.allclose(w.sum(-1), torch.ones(2))
        assert (w[0] - w[1]).abs().max() > 1e-3
        assert not torch.allclose(w, untrained[name])  # training moved the routers


def test_tensorboard_switch(tmp_path, monkeypatch):
    import mma  # noqa: F401
    from mmengine.registry import DefaultScope

    from mma.registry import VISUALIZERS
    cfg = Config.fromfile(TINY_CFG)
    assert cfg.visualizer.type == 'MMAVisualizer' and cfg.visualizer.tensorboard is False
    cfg.merge_from_dict({'visualizer.tensorboard': True})  # = --cfg-options visualizer...=True

    def build(name):
        with DefaultScope.overwrite_default_scope('mma'):
            return VISUALIZERS.build(dict(cfg.visualizer, name=name, save_dir=str(tmp_path)))

    default = Config.fromfile(TINY_CFG).visualizer
    with DefaultScope.overwrite_default_scope('mma'):
        vis = VISUALIZERS.build(dict(default, name='tb_off', save_dir=str(tmp_path / 'off')))
    assert [type(b).__name__ for b in vis._vis_backends.values()] == ['LocalVisBackend']
    vis = build('tb_on')
    assert [type(b).__name__ for b in vis._vis_backends.values()] == [
        'LocalVisBackend', 'TensorboardVisBackend']
    # without the package: an error when the visualizer is built, before training, not mid-run
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda n, *a: None if n == 'tensorboard' else real(n, *a))
    with pytest.raises(ImportError, match='tensorboard'):
        build('tb_missing')


def test_tensorboard_event_file_holds_the_scalars(runs):
    """The run with visualizer.tensorboard=True wrote a real event file; read back with
    TensorBoard's own reader, it holds the logged loss and learning rate of every logged step,
    equal to scalars.json (TensorBoard stores float32)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = glob.glob(os.path.join(runs['lr_1e-2'], '*', 'vis_data', 'events.out.tfevents.*'))
    assert len(events) == 1
    assert not glob.glob(os.path.join(runs['lr_3e-2'], '**', 'events.out.tfevents.*'),
                         recursive=True)  # the switch is off by default
    acc = EventAccumulator(events[0])
    acc.Reload()
    curves = load_scalars(runs['lr_1e-2'])
    for key in ('loss', 'lr'):
        steps, values = curves[key]
        assert len(steps) == 9  # 3 epochs x 3 iterations, logged every iteration
        got = acc.Scalars(key)
        assert [e.step for e in got] == steps
        assert np.allclose([e.value for e in got], values, rtol=1e-6, atol=0)
        assert len(set(values)) > 1  # real, changing values

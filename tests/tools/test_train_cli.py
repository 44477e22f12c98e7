"""tools/train.py end to end on CPU: single process, torchrun (gloo), FSDP; the LaVIN configs."""
import glob
import importlib.util
import os
import re
import shutil
import sys

import pytest
import torch
from mmengine.config import Config

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'engine'))
from _train_helpers import REPO, TINY_CFG, data_options, load_state, run, torchrun  # noqa

from mma.toy import make_tiny_instruction_data, make_tiny_scienceqa

LOSS = re.compile(r'Epoch\(train\)\s+\[(\d+)\]\[\d+/\d+\].*eta: \S+.*\sloss: ([\d.]+)')


@pytest.fixture(scope='module')
def sqa(tmp_path_factory):
    return make_tiny_scienceqa(str(tmp_path_factory.mktemp('cli') / 'sqa'))


def _epoch_losses(log: str) -> dict:
    losses = {}
    for ep, loss in LOSS.findall(log):
        losses.setdefault(int(ep), []).append(float(loss))
    return {k: sum(v) / len(v) for k, v in losses.items()}


def test_train_cli_single_process(sqa, tmp_path):
    wd = str(tmp_path / 'w')
    res = run([sys.executable, 'tools/train.py', TINY_CFG, '--work-dir', wd, '--cfg-options'] +
              data_options(sqa) + ['train_cfg.max_epochs=4'])
    log = res.stdout + res.stderr
    losses = _epoch_losses(log)
    assert sorted(losses) == [1, 2, 3, 4]
    assert losses[4] < losses[1] - 0.02, losses
    assert os.path.isfile(os.path.join(wd, 'epoch_4.pth'))


@pytest.mark.slow
def test_train_cli_torchrun_two_cpu_processes(sqa, tmp_path):
    wd = str(tmp_path / 'w')
    res = torchrun(2, [TINY_CFG, '--work-dir', wd, '--cfg-options'] + data_options(sqa) +
                   ['train_cfg.max_epochs=4', 'optim_wrapper.optimizer.lr=0.02'])
    log = res.stdout + res.stderr
    # the environment and config dumps are in the work dir's log file (the console shows progress)
    full_log = ''.join(open(f).read() for f in glob.glob(os.path.join(wd, '*', '*.log')))
    assert 'MMDistributedDataParallel' in full_log or 'world_size: 2' in full_log
    losses = _epoch_losses(log)
    assert sorted(losses) == [1, 2, 3, 4] and losses[4] < losses[1] - 0.02, losses
    assert os.path.isfile(os.path.join(wd, 'epoch_4.pth'))


@pytest.mark.slow
def test_fsdp_two_cpu_ranks_train_and_resume(sqa, tmp_path):
    cfg = os.path.join(REPO, 'configs', 'tiny', 'lavin_tiny_sqa_fsdp.py')
    opts = data_options(sqa) + ['train_cfg.max_epochs=2']
    straight = str(tmp_path / 'straight')
    res = torchrun(2, [cfg, '--work-dir', straight, '--cfg-options'] + opts)
    assert 'FSDP' in res.stdout + res.stderr  # FSDPStrategy ran (its deprecation notice)
    resumed = str(tmp_path / 'resumed')
    os.makedirs(resumed)
    shutil.copy(os.path.join(straight, 'epoch_1.pth'), resumed)
    res = torchrun(2, [cfg, '--work-dir', resumed, '--resume',
                       os.path.join(resumed, 'epoch_1.pth'), '--cfg-options'] + opts)
    log = res.stdout + res.stderr
    assert 'resumed epoch: 1' in log
    one = load_state(os.path.join(straight, 'epoch_1.pth'))
    a = load_state(os.path.join(straight, 'epoch_2.pth'))
    b = load_state(os.path.join(resumed, 'epoch_2.pth'))
    assert a.keys() == b.keys() == one.keys()
    assert all('adapter' in k or k.startswith(('projector', 'modality_embedding')) for k in a)
    # the first resumed step sees exactly the checkpointed weights: same loss as straight
    first = [float(x) for x in re.findall(r'Epoch\(train\)\s+\[2\]\[1/\d+\].*\sloss: ([\d.]+)',
                                          log)]
    straight_log = open(os.path.join(straight, sorted(
        d for d in os.listdir(straight) if d[:2] == '20')[0], sorted(
        d for d in os.listdir(straight) if d[:2] == '20')[0] + '.log')).read()
    ref = [float(x) for x in re.findall(r'Epoch\(train\)\s+\[2\]\[1/\d+\].*\sloss: ([\d.]+)',
                                        straight_log)]
    assert first and first == ref
    step = max((a[k] - one[k]).abs().max() for k in a)
    assert step > 1e-3 and all(torch.equal(a[k], b[k]) for k in a)  # bitwise, as without FSDP


def test_deepspeed_config(sqa, tmp_path):
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'lavin_13b_sqa_deepspeed.py'))
    assert cfg.strategy.type == 'DeepSpeedStrategy' and cfg.strategy.zero_optimization.stage == 2
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(1.125e-3)
    if importlib.util.find_spec('deepspeed') is None or not torch.cuda.is_available():
        pytest.skip('DeepSpeed training needs the deepspeed package and CUDA; only the config '
                    'was checked')
    tiny = tmp_path / 'tiny_deepspeed.py'
    tiny.write_text(f"_base_ = [{TINY_CFG!r}]\nrunner_type = 'FlexibleRunner'\n"
                    f"strategy = {dict(cfg.strategy)!r}\n"
                    f"optim_wrapper = dict(_delete_=True, **{dict(cfg.optim_wrapper)!r})\n")
    wd = str(tmp_path / 'w')
    torchrun(1, [str(tiny), '--work-dir', wd, '--cfg-options'] + data_options(sqa) +
             ['train_cfg.max_epochs=1'])
    assert os.path.isfile(os.path.join(wd, 'epoch_1.pth'))


@pytest.mark.parametrize('name,temp,epochs,warmup,gpus,accum', [
    ('lavin_7b_sqa.py', 10.0, 20, 2, 2, 4),
    ('lavin_13b_sqa.py', 5.0, 20, 2, 8, 1),
    ('lavin_13b_vlit.py', 5.0, 15, 0.2, 8, 1),
])
def test_lavin_recipes(name, temp, epochs, warmup, gpus, accum, sqa, tmp_path):
    cfg = Config.fromfile(os.path.join(REPO, 'configs', name))
    assert cfg.default_scope == 'mma'
    bs = cfg.train_dataloader.batch_size
    assert bs == 4 and cfg.optim_wrapper.accumulative_counts == accum and cfg.num_gpus == gpus
    assert bs * accum * gpus == cfg.effective_batch == 32
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'AdamW' and opt.lr == pytest.approx(9e-3 * 32 / 256) == pytest.approx(
        1.125e-3)
    assert tuple(opt.betas) == (0.9, 0.95) and opt.weight_decay == 0.02
    pw = cfg.optim_wrapper.paramwise_cfg
    assert pw.bias_decay_mult == pw.flat_decay_mult == pw.norm_decay_mult == 0.0
    warm, cos = cfg.param_scheduler
    assert (warm.type, warm.begin, warm.end, warm.by_epoch, warm.convert_to_iter_based) == (
        'LinearLR', 0, warmup, True, True)
    assert (cos.type, cos.begin, cos.end, cos.eta_min) == ('CosineAnnealingLR', warmup, epochs,
                                                           0.0)
    assert cfg.train_cfg.max_epochs == epochs and cfg.train_cfg.type.startswith('TokenMean')
    assert cfg.model.llm_adapter.router.temperature == cfg.model.vit_adapter.router.temperature
    assert cfg.model.llm_adapter.router.temperature == temp
    assert cfg.model.llm.max_seq_len == 512 and cfg.model.llm.gradient_checkpointing is False
    assert 'TrainableCheckpointHook' in [h.type for h in cfg.custom_hooks]

    # the data pipeline on fixture data through --cfg-options-style overrides
    from mmengine.registry import DefaultScope

    from mma.registry import DATASETS
    if 'vlit' in name:
        paths = make_tiny_instruction_data(str(tmp_path / 'ins'))
        opts = {'train_dataloader.dataset.datasets.0.ann_file': paths['alpaca']}
        for i in (1, 2, 3):
            opts[f'train_dataloader.dataset.datasets.{i}.ann_file'] = paths['llava']
            opts[f'train_dataloader.dataset.datasets.{i}.image_root'] = paths['coco']
        opts['model.tokenizer.model_path'] = sqa['tokenizer']  # the pipelines take the model's
    else:
        opts = dict(o.split('=', 1) for o in data_options(sqa))
    cfg.merge_from_dict(opts)
    from mma.engine import sync_data_with_model
    sync_data_with_model(cfg)  # as mma's Runner does: visual tokens from the model
    with DefaultScope.overwrite_default_scope('mma'):  # as under the Runner (default_scope)
        ds = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(ds) == (2 + 3 * 2 if 'vlit' in name else 12)
    from mma.datasets import mma_collate
    batch = mma_collate([ds[i] for i in range(4)])['inputs']
    if 'sqa' in name:
        n_img = int(batch['has_image'].sum())
        assert n_img == 0 or batch['images'].shape == (n_img, 3, 224, 224)
    assert batch['input_ids'].shape[1] == int(batch['lengths'].max())


def test_train_check_validates_without_training(sqa, tmp_path):
    import json
    import subprocess

    from _train_helpers import env
    wd = tmp_path / 'w'
    ok = run([sys.executable, 'tools/train.py', TINY_CFG, '--check', '--work-dir', str(wd),
              '--cfg-options'] + data_options(sqa))
    out = ok.stdout
    assert 'ok    model: LaVIN' in out and 'all checks passed' in out
    assert 'ok    train_dataloader: 12 samples (6 with an image, all opened)' in out
    assert 'ok    test_dataloader: 12 samples' in out and 'ok    test_evaluator' in out
    assert not wd.exists() or not any(wd.rglob('*.pth'))  # nothing trained

    # a broken copy: one image truncated, one qid gone from problems.json, a misspelt metric,
    # and an LLM whose vocabulary is not the tokenizer's
    bad = tmp_path / 'bad'
    shutil.copytree(sqa['data_root'], bad)
    problems = json.loads((bad / 'problems.json').read_text())
    img_qid = next(q for q in json.loads((bad / 'pid_splits.json').read_text())['train']
                   if problems[q].get('image'))
    png = bad / 'images' / 'train' / img_qid / 'image.png'
    png.write_bytes(png.read_bytes()[:60])
    test_qid = json.loads((bad / 'pid_splits.json').read_text())['test'][0]
    del problems[test_qid]
    (bad / 'problems.json').write_text(json.dumps(problems))
    opts = [o.replace(sqa['data_root'], str(bad)) for o in data_options(sqa)]
    res = subprocess.run([sys.executable, 'tools/train.py', TINY_CFG, '--check', '--cfg-options']
                         + opts + ['model.llm.vocab_size=600', 'test_evaluator.type=SQAMetric'],
                         cwd=REPO, env=env(), capture_output=True, text=True, timeout=240)
    out = res.stdout
    assert res.returncode == 1, out + res.stderr[-2000:]
    assert 'ok    model: LaVIN' in out and 'some checks FAILED' in out
    assert re.search(r'FAIL  weights and model tokenizer: ValueError: tokenizer \S+ has 512 '
                     r'pieces but model.llm .* vocab_size 600', out), out
    assert re.search(rf'FAIL  train_dataloader: DataValidationError: .*1 images cannot be '
                     rf'used:\n  cannot read image {png} \(sample {img_qid}\): corrupt', out), out
    assert re.search(rf"FAIL  test_dataloader: MMAKeyError: 1 qids of split 'test' in \S+ are not "
                     rf"in \S+problems.json: \['{test_qid}'\]", out), out
    assert re.search(r'FAIL  test_evaluator: MMAKeyError: .*SQAMetric is not in the mma::metric '
                     r'registry.* Registered metric types: .*ScienceQAMetric', out), out

"""--amp on CPU: bf16 autocast around the forward, fp32 adapters and optimizer state."""
import importlib.util
import os

import torch
from mmengine.config import Config

import mma
from mma.engine import SkipNonFiniteCPUAmpOptimWrapper
from mma.models import IGNORE_INDEX
from mma.toy import tiny_lavin_cfg

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 500, (2, 12), generator=g)
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 6:] = ids[:, 6:]
    return dict(input_ids=ids, labels=labels, has_image=torch.tensor([True, False]),
                visual_pos=torch.tensor([3, 3]), images=torch.randn(1, 3, 32, 32, generator=g),
                lengths=torch.tensor([12, 12]))


def test_cpu_amp_wrapper_runs_the_forward_in_bf16():
    model = mma.build_model(tiny_lavin_cfg())
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    wrapper = SkipNonFiniteCPUAmpOptimWrapper(optimizer=torch.optim.AdamW(params, lr=1e-2))
    dtypes = []
    model.llm.layers[0].attention.wq.register_forward_hook(
        lambda m, i, o: dtypes.append(o.dtype))
    batch = _batch()
    fp32_loss = model(batch, mode='loss')['loss']
    with wrapper.optim_context(model):
        loss = model(batch, mode='loss')['loss']
    wrapper.update_params(loss)
    assert dtypes == [torch.float32, torch.bfloat16]
    assert loss.dtype == torch.float32
    assert abs(loss.item() - fp32_loss.item()) < 2e-2 * fp32_loss.item()
    assert all(p.dtype == torch.float32 for p in params)
    assert any(not torch.equal(p, b) for p, b in zip(params, before))


def test_train_amp_flag_on_cpu_selects_the_cpu_wrapper():
    spec = importlib.util.spec_from_file_location('mma_tools_train_amp',
                                                  os.path.join(REPO, 'tools', 'train.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'lavin_tiny_demo.py'))
    assert cfg.optim_wrapper.type == 'SkipNonFiniteOptimWrapper'
    tool.setup_amp(cfg)
    expected = ('SkipNonFiniteAmpOptimWrapper' if torch.cuda.is_available() else
                'SkipNonFiniteCPUAmpOptimWrapper')
    assert cfg.optim_wrapper.type == expected

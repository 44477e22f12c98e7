import sys
import textwrap

import pytest
import torch
from mmengine.config import Config

import mma
from mma.registry import ADAPTERS, MODELS

PLUGIN = '''
import torch
from torch import nn
from mma.registry import ADAPTERS, ROUTERS


@ROUTERS.register_module()
class HardRouter(nn.Module):
    """Routes every input to expert 0 (one-hot)."""

    def __init__(self, in_features, num_experts=2):
        super().__init__()
        self.num_experts = num_experts
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        w = torch.zeros(*x.shape[:-1], self.num_experts, dtype=x.dtype, device=x.device)
        w[..., 0] = 1
        return w + 0 * self.dummy


@ADAPTERS.register_module()
class GateAdapter(nn.Module):
    def __init__(self, in_features, init=0.0):
        super().__init__()
        self.gate = nn.Parameter(torch.full((in_features, ), init))

    def forward(self, x, ctx=None):
        return x * (1 + self.gate)
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    name = 'mma_test_plugin_%d' % id(tmp_path)
    (tmp_path / f'{name}.py').write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_third_party_adapter_and_router_from_config(tmp_path, plugin):
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(textwrap.dedent(f'''
        custom_imports = dict(imports=['{plugin}'], allow_failed_imports=False)
        model = dict(
            type='LaVIN',
            llm=dict(type='LLaMA', preset='tiny'),
            vision=dict(type='CLIPViT', model_name=None, quick_gelu=True, feature_every=1,
                        vision_cfg=dict(image_size=32, patch_size=8, width=64, head_width=16,
                                        layers=2, mlp_ratio=4.0, embed_dim=32)),
            llm_adapter=dict(type='GateAdapter', init=0.5),
            vit_adapter=dict(type='RoutedRepAdapter', router=dict(type='HardRouter')),
        )
    '''))
    model = mma.build_model(str(cfg_file))
    blk = model.llm.layers[1]
    assert type(blk.adapter_attn).__name__ == 'GateAdapter'
    assert torch.all(blk.adapter_attn.gate == 0.5)
    assert blk.adapter_attn.gate.requires_grad
    vit_adapter = model.vision.blocks[0].ln_1.adapter
    assert type(vit_adapter.router).__name__ == 'HardRouter'
    x = torch.randn(2, 3, 64)
    torch.testing.assert_close(vit_adapter.router(x)[..., 0], torch.ones(2, 3))


def test_misspelt_type_lists_registered_names():
    with pytest.raises(KeyError) as err:
        ADAPTERS.build(dict(type='RepAdaptor', in_features=8))
    msg = str(err.value)
    assert 'RepAdaptor' in msg and 'RepAdapter' in msg and 'RoutedRepAdapter' in msg


def test_runner_registry_finds_lavin_under_mma_scope():
    from mmengine.registry import MODELS as ROOT
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mma'):
        with ROOT.switch_scope_and_registry('mma') as reg:
            assert reg is MODELS
            assert reg.get('LaVIN') is mma.models.LaVIN


def test_build_model_accepts_path_config_and_dicts(tmp_path):
    from mma.toy import tiny_lavin_cfg
    model_cfg = tiny_lavin_cfg()
    cfg_file = tmp_path / 'c.py'
    cfg_file.write_text(f'model = {model_cfg!r}\n')
    counts = set()
    for spec in (str(cfg_file), Config.fromfile(str(cfg_file)), dict(model=model_cfg),
                 model_cfg):
        m = mma.build_model(spec)
        counts.add(sum(p.numel() for p in m.parameters() if p.requires_grad))
    assert len(counts) == 1
    with pytest.raises(FileNotFoundError, match='nope.py'):
        mma.build_model(str(tmp_path / 'nope.py'))


def test_build_model_overrides_merge_nested_fields():
    from mma.toy import tiny_lavin_cfg
    m = mma.build_model(tiny_lavin_cfg(), llm=dict(n_layers=3))
    assert len(m.llm.layers) == 3 and m.llm.args.dim == 64
    m = mma.build_model(tiny_lavin_cfg(), llm_adapter=dict(_delete_=True, type='RepAdapter'))
    assert type(m.llm.layers[0].adapter_attn).__name__ == 'RepAdapter'


@pytest.mark.parametrize('field,bad,listed', [
    ('model.type', 'LaVln', 'LaVIN'),
    ('train_dataloader.dataset.type', 'ScienceQADatset', 'ScienceQADataset'),
    ('train_dataloader.dataset.pipeline.1.type', 'TokeniseForLaVIN', 'TokenizeForLaVIN'),
    ('test_evaluator.type', 'ScienceQAMetrc', 'ScienceQAMetric'),
])
def test_misspelt_type_in_config_lists_names_through_the_runner(field, bad, listed, tmp_path,
                                                                 tokenizer_path, sqa_root):
    """A Config built by the mmengine Runner (as tools/train.py and tools/test.py run it)."""
    import os

    from mmengine.config import Config
    from mma.engine import MMARunner

    from mma.registry import explain_unknown_types
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = Config.fromfile(os.path.join(root, 'configs', 'tiny', 'lavin_tiny_sqa.py'))
    tok = dict(type='SentencePieceTokenizer', model_path=tokenizer_path)
    cfg.merge_from_dict({
        'work_dir': str(tmp_path), 'model.tokenizer': tok, field: bad,
        **{f'{dl}.dataset.{k}': v for dl in ('train_dataloader', 'test_dataloader')
           for k, v in (('data_root', str(sqa_root)), ('split', 'test'),
                        ('pipeline.1.tokenizer', tok))}})
    with pytest.raises(KeyError) as err, explain_unknown_types():
        runner = MMARunner.from_cfg(cfg)  # the configs' runner_type
        runner.build_dataloader(cfg.train_dataloader)
        runner.build_evaluator(cfg.test_evaluator)
    msg = str(err.value)
    assert f'{bad} is not in the mma::' in msg and 'Registered' in msg and listed in msg, msg

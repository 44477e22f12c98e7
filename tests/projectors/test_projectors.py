"""Projectors are registered components; LaVIN builds the one its config names."""

import pytest
import torch
import torch.nn.functional as F

from mma.models import LaVIN
from mma.projectors import LaVINProjector, MLPProjector
from mma.registry import PROJECTORS
from mma.toy import TINY_VISION_CFG, tiny_lavin_cfg


def _n(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_llava_mlp_shapes_and_count():
    proj = PROJECTORS.build(dict(type='MLPProjector', in_features=1024, out_features=4096))
    assert isinstance(proj, MLPProjector)
    assert proj.fc1.weight.shape == (4096, 1024) and proj.fc2.weight.shape == (4096, 4096)
    # LLaVA-1.5-7B's mm_projector: 1024*4096 + 4096 + 4096*4096 + 4096
    assert _n(proj) == 20_979_712
    x = torch.randn(2, 3, 1024)
    ref = F.linear(F.gelu(F.linear(x, proj.fc1.weight, proj.fc1.bias)), proj.fc2.weight,
                   proj.fc2.bias)
    torch.testing.assert_close(proj(x), ref, rtol=0, atol=0)


def test_lavin_projector_unchanged():
    proj = PROJECTORS.build(dict(type='LaVINProjector', in_features=1024, out_features=4096))
    assert sorted(proj.state_dict()) == ['fc1.bias', 'fc1.weight', 'fc2.bias', 'fc2.weight']
    assert proj.fc1.weight.shape == (128, 1024) and _n(proj) == 1024 * 128 + 128 + 128 * 4096 + 4096
    assert not proj.fc1.bias.any() and not proj.fc2.bias.any()
    bound = (6 / (1024 + 128)) ** 0.5  # xavier uniform
    assert proj.fc1.weight.abs().max() <= bound and proj.fc1.weight.abs().max() > 0.9 * bound
    x = torch.randn(2, 3, 1024)
    torch.testing.assert_close(proj(x), proj.fc2(F.silu(proj.fc1(x))), rtol=0, atol=0)


def test_lavin_builds_the_configured_projector():
    cfg = tiny_lavin_cfg()
    base = LaVIN(**{k: v for k, v in cfg.items() if k != 'type'})
    mlp = LaVIN(**dict({k: v for k, v in cfg.items() if k != 'type'},
                       projector=dict(type='MLPProjector')))
    assert isinstance(base.projector, LaVINProjector) and isinstance(mlp.projector, MLPProjector)
    width, dim = TINY_VISION_CFG['width'], base.llm.dim
    assert mlp.projector.fc1.weight.shape == (dim, width)

    def trainable(m):
        return sum(p.numel() for p in m.parameters() if p.requires_grad)
    # only the projector differs, and all of it trains
    assert trainable(mlp) - trainable(base) == _n(mlp.projector) - _n(base.projector)
    images = torch.randn(2, 3, 32, 32)
    assert mlp.encode_images(images).shape == (2, mlp.num_visual_tokens, dim)


def test_projector_default_and_unknown_type():
    cfg = {k: v for k, v in tiny_lavin_cfg().items() if k not in ('type', 'projector')}
    assert LaVIN(**cfg).projector.fc1.out_features == 128  # LaVIN's default
    with pytest.raises(TypeError, match='projector_hidden'):  # the 0.1.0 alias is gone
        LaVIN(**cfg, projector_hidden=24)
    with pytest.raises(KeyError, match='Registered projector types: LaVINProjector, MLPProjector'):
        LaVIN(**cfg, projector=dict(type='Resampler'))

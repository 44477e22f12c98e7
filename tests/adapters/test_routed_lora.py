"""RoutedLoRA (MMA over LoRA experts): a mixture of identical experts is a LoRA; in LaVIN each
modality's merge equals the unmerged model with no adapter left, and merged decoding runs."""
import pytest
import torch
from torch import nn

import mma
from mma.adapters import LoRA, RoutedLoRA
from mma.models.merge import adapter_names, merge_lavin
from mma.routers import RoutingContext
from mma.toy import tiny_lavin_cfg

from conftest import randomize_adapters, tiny_lavin_inputs  # noqa: E402


def test_identical_experts_equal_a_lora():
    torch.manual_seed(0)
    layer = nn.Linear(16, 24)
    routed = RoutedLoRA(16, 24, rank=4, alpha=8, num_experts=3)
    lora = LoRA(16, 24, rank=4, alpha=8)
    with torch.no_grad():
        lora.lora_A.weight.copy_(routed.lora_A.weight)
        up = torch.randn(24, 4)
        lora.lora_B.weight.copy_(up)
        for e in routed.experts:
            e.weight.copy_(up)
        routed.router.linear.weight.normal_()
    x = torch.randn(2, 5, 16)
    assert (routed(x, layer) - lora(x, layer)).abs().max() <= 1e-6
    assert (routed(x, layer) - layer(x)).abs().max() > 1e-2


def test_zero_init_equals_the_frozen_layer():
    layer = nn.Linear(16, 24)
    x = torch.randn(2, 5, 16)
    assert torch.equal(RoutedLoRA(16, 24)(x, layer), layer(x))


def _model():
    torch.manual_seed(0)
    cfg = tiny_lavin_cfg(vocab_size=300, vit_adapters=False)
    cfg.update(llm_adapter=dict(type='RoutedLoRA', rank=4, alpha=8,
                                router=dict(type='ModalityRouter', temperature=1.0)),
               llm_adapter_placement='linear:q,v,o,down')
    return randomize_adapters(mma.build_model(cfg).eval(), seed=1)


def _inputs(modality: str):
    return dict(tiny_lavin_inputs(modality), lengths=torch.tensor([10, 8]))


@pytest.mark.parametrize('modality', ['image', 'text'])
def test_per_modality_merge_equals_unmerged(modality):
    model = _model()
    assert all(isinstance(s.adapter, RoutedLoRA) for s in model.llm.adapter_slots(
        model.llm_adapter_placement))
    with torch.no_grad():
        before = model(_inputs(modality), mode='tensor')
        merged = merge_lavin(model, modality).eval()
        assert adapter_names(merged) == []
        assert all(s.adapter is None for s in merged.llm.adapter_slots('all'))
        after = merged(_inputs(modality), mode='tensor')
        assert (after - before).abs().max() <= 1e-5
        other = 'text' if modality == 'image' else 'image'  # routing is modality-specific
        assert (merge_lavin(model, other)(_inputs(modality), mode='tensor') - before).abs().max() \
            > 1e-3
        ref = model.generate(_inputs(modality), max_new_tokens=4)
        out = merged.generate(_inputs(modality), max_new_tokens=4)
    assert out.tokens == ref.tokens


def test_routing_reads_the_modality_token():
    """In the LLM every token of a sample gets the routing of its modality token."""
    routed = RoutedLoRA(8, 8, num_experts=2)
    x = torch.randn(2, 4, 8)
    ctx = RoutingContext(token_index=torch.tensor([0, 2]), cache={})
    routed(x, nn.Linear(8, 8), ctx)
    w = ctx.cache[routed]
    assert w.shape == (2, 1, 2)
    assert torch.allclose(w[1, 0], routed.router(x[1, 2]))

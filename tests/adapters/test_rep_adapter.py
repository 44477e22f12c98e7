import pytest
import torch
from torch import nn

from mma.adapters import GroupedLinear, RepAdapter, RoutedRepAdapter, merge_into_linear
from mma.routers import RoutingContext


def _randomise(module):
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.2)
    return module


def test_grouped_linear_equals_grouped_conv1d():
    lin = _randomise(GroupedLinear(8, 12, groups=2))
    conv = nn.Conv1d(8, 12, kernel_size=1, groups=2)
    with torch.no_grad():
        conv.weight.copy_(lin.weight[..., None])
        conv.bias.copy_(lin.bias)
    x = torch.randn(3, 5, 8)
    ref = conv(x.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(lin(x), ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(x @ lin.dense_weight().T + lin.bias, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('cls', [RepAdapter, RoutedRepAdapter])
def test_adapter_is_identity_at_init(cls):
    x = torch.randn(2, 7, 32)
    adapter = cls(32, hidden_dim=8, groups=2).train()
    assert torch.equal(adapter(x), x)


def test_param_counts_match_reference_formula():
    d = 4096
    routed = RoutedRepAdapter(d, hidden_dim=8, groups=2)
    # down d*8+8, two experts d*4+d each, router 2d+2 (original lavin/mm_adapter.py)
    assert sum(p.numel() for p in routed.parameters()) == 81_930
    plain = RepAdapter(d, hidden_dim=8, groups=2)
    assert sum(p.numel() for p in plain.parameters()) == d * 8 + 8 + d * 4 + d


def test_routed_adapter_equals_explicit_formula():
    a = _randomise(RoutedRepAdapter(16, hidden_dim=4, groups=2, scale=0.5,
                                    router=dict(type='ModalityRouter', temperature=3.0))).eval()
    x = torch.randn(2, 5, 16)
    # per-sample routing from token 2
    ctx = RoutingContext(token_index=torch.tensor([2, 2]))
    w = torch.softmax(a.router.linear(x[:, 2]) / 3.0, -1)[:, None]  # (B, 1, 2)
    z = a.down(x)
    ref = x + 0.5 * (w[..., :1] * a.experts[0](z) + w[..., 1:] * a.experts[1](z))
    torch.testing.assert_close(a(x, ctx), ref)
    # per-token routing without context
    w_tok = torch.softmax(a.router.linear(x) / 3.0, -1)
    ref_tok = x + 0.5 * (w_tok[..., :1] * a.experts[0](z) + w_tok[..., 1:] * a.experts[1](z))
    torch.testing.assert_close(a(x), ref_tok)


def test_routing_cache_reuses_prefill_weights():
    a = _randomise(RoutedRepAdapter(16, hidden_dim=4, groups=2)).eval()
    x = torch.randn(2, 5, 16)
    ctx = RoutingContext(token_index=torch.zeros(2, dtype=torch.long), cache={})
    full = a(x, ctx)
    step = a(x[:, 3:4], ctx)  # a decode step: the routing token is not in the input any more
    torch.testing.assert_close(step, full[:, 3:4])


def _rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_merge_rep_adapter_into_linear():
    adapter = _randomise(RepAdapter(32, hidden_dim=8, groups=2, scale=0.7)).eval()
    linear = nn.Linear(32, 24, bias=False)
    x = torch.randn(4, 9, 32)
    merged = merge_into_linear(linear, adapter.affine())
    assert _rel_err(merged(x), linear(adapter(x))) <= 1e-5


def test_merge_routed_adapter_with_fixed_weights():
    adapter = _randomise(RoutedRepAdapter(32, hidden_dim=8, groups=2)).eval()
    linear = _randomise(nn.Linear(32, 24, bias=True))
    x = torch.randn(3, 6, 32)
    # one modality: every sample has the same routing token, so the router weights are constant
    x_same = x.clone()
    x_same[:, 0] = x[0, 0]
    ctx = RoutingContext(token_index=torch.zeros(3, dtype=torch.long), cache={})
    ref = linear(adapter(x_same, ctx))
    weights = ctx.cache[adapter][0, 0]
    merged = merge_into_linear(linear, adapter.affine(weights))
    assert _rel_err(merged(x_same), ref) <= 1e-5
    with pytest.raises(ValueError, match='routing weights'):
        adapter.affine()

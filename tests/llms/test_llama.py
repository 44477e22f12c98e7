import pytest
import torch

from mma.llms import LLaMA, LLaMAArgs, apply_rope, rope_cos_sin
from mma.registry import LLMS


def meta_reference_rope(x, theta=10000.0):
    """Meta's llama/model.py rotary embedding (complex numbers), written independently."""
    b, t, h, d = x.shape
    freqs = 1.0 / (theta**(torch.arange(0, d, 2)[:(d // 2)].float() / d))
    freqs = torch.outer(torch.arange(t).float(), freqs)
    freqs_cis = torch.polar(torch.ones_like(freqs), freqs)  # (T, D/2)
    xc = torch.view_as_complex(x.float().reshape(b, t, h, -1, 2))
    return torch.view_as_real(xc * freqs_cis[None, :, None]).flatten(3)


def test_rope_matches_meta_complex_implementation():
    x = torch.randn(2, 11, 3, 16)
    pos = torch.arange(11).expand(2, 11)
    cos, sin = rope_cos_sin(pos, 16, 10000.0)
    torch.testing.assert_close(apply_rope(x, cos, sin), meta_reference_rope(x), rtol=1e-5,
                               atol=1e-5)


def test_ffn_hidden_dim_matches_llama_sizes():
    assert LLaMAArgs(dim=4096).ffn_hidden_dim == 11008
    assert LLaMAArgs(dim=5120).ffn_hidden_dim == 13824
    assert LLaMAArgs(dim=8192, ffn_dim_multiplier=1.3, multiple_of=4096).ffn_hidden_dim == 28672


def test_meta_key_names():
    m = LLaMA(preset='tiny')
    keys = set(m.state_dict())
    for k in ['tok_embeddings.weight', 'norm.weight', 'output.weight',
              'layers.0.attention.wq.weight', 'layers.0.attention.wk.weight',
              'layers.0.attention.wv.weight', 'layers.0.attention.wo.weight',
              'layers.0.feed_forward.w1.weight', 'layers.0.feed_forward.w2.weight',
              'layers.0.feed_forward.w3.weight', 'layers.0.attention_norm.weight',
              'layers.1.ffn_norm.weight']:
        assert k in keys
    assert m.layers[0].adapter_attn is None and m.layers[0].adapter_ffn is None


@pytest.mark.parametrize('preset', ['tiny', 'tiny-gqa'])
def test_sdpa_equals_eager_attention(preset):
    sdpa = LLaMA(preset=preset)
    eager = LLaMA(preset=preset, attn_backend='eager')
    eager.load_state_dict(sdpa.state_dict())
    x = torch.randn(2, 13, 64)
    torch.testing.assert_close(sdpa(x), eager(x), rtol=1e-5, atol=1e-5)


def test_causality():
    m = LLaMA(preset='tiny')
    x = torch.randn(1, 10, 64)
    y = x.clone()
    y[:, 6:] = torch.randn(1, 4, 64)
    torch.testing.assert_close(m(x)[:, :6], m(y)[:, :6], rtol=1e-6, atol=1e-6)


def test_kv_cache_decoding_equals_full_forward():
    m = LLaMA(preset='tiny-gqa').eval()
    x = torch.randn(2, 9, 64)
    full = m(x)
    cache = m.new_cache(2, 16)
    out = [m(x[:, :5], cache=cache)]
    for t in range(5, 9):
        mask = torch.ones(1, 1, 1, t + 1, dtype=torch.bool)
        out.append(m(x[:, t:t + 1], mask=mask, cache=cache))
    torch.testing.assert_close(torch.cat(out, 1), full, rtol=1e-5, atol=1e-5)
    assert cache.length == 9


def test_gradient_checkpointing_same_grads():
    cfg = dict(type='LLaMA', preset='tiny')
    a = LLMS.build(cfg)
    b = LLMS.build(dict(cfg, gradient_checkpointing=True))
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 7, 64)
    for m in (a, b):
        m.train()
        m(x).square().mean().backward()
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-6, atol=1e-7, msg=n)


def test_unknown_preset_lists_known():
    with pytest.raises(KeyError, match='llama-7b'):
        LLaMA(preset='llama-8b')


def test_7b_preset_shapes_on_meta():
    with torch.device('meta'):
        m = LLaMA(preset='llama-7b')
    assert all(p.is_meta for p in m.parameters())
    assert sum(p.numel() for p in m.parameters()) == 6_738_415_616


def test_compile_option_keeps_keys_outputs_and_grads():
    """``LLaMA(compile=...)`` compiles the blocks in place: same state-dict keys, same outputs and
    gradients as the eager model (backend aot_eager: traced by dynamo and AOTAutograd, no C++
    compiler needed)."""
    torch._dynamo.reset()
    cfg = dict(type='LLaMA', preset='tiny')
    eager = LLMS.build(cfg)
    compiled = LLMS.build(dict(cfg, compile=dict(backend='aot_eager', dynamic=False)))
    assert list(compiled.state_dict()) == list(eager.state_dict())
    compiled.load_state_dict(eager.state_dict())
    x = torch.randn(2, 7, 64)
    for m in (eager, compiled):
        m(x).square().mean().backward()
    counters = torch._dynamo.utils.counters['stats']
    assert counters['unique_graphs'] >= 1  # the blocks really went through dynamo
    torch.testing.assert_close(compiled(x), eager(x), rtol=1e-5, atol=1e-6)
    for (n, pa), pb in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(pb.grad, pa.grad, rtol=1e-5, atol=1e-6, msg=n)

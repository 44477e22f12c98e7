import pytest
import torch

import mma
from mma.benchmark import (build, make_batch, mma_loss, reference_loss, run_train_benchmark,
                           sizes)
from mma.benchmark_reference import reference_code_loss


def test_reference_style_and_mma_losses_agree():
    torch.backends.mha.set_fastpath_enabled(False)
    size = sizes()['tiny']
    model = build(size).eval()
    with torch.no_grad():  # non-zero adapters so that every path matters
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.2)
    batch = make_batch(size, vocab=model.llm.args.vocab_size)
    ref = reference_loss(model, batch, size.max_seq_len)
    new = mma_loss(model, batch)
    torch.testing.assert_close(new, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('placement', ['attn', 'block'])
def test_reference_code_port_matches_mma_loss_and_gradients(placement):
    """The port of the reference code's computation (its kernels: sequence-first CLIP attention,
    Conv1d adapters, complex RoPE, per-sample insertion) gives mma's loss and adapter gradients."""
    torch.backends.mha.set_fastpath_enabled(False)
    size = sizes()['tiny']
    torch.manual_seed(0)
    model = mma.build_model(dict(size.model, llm_adapter_placement=placement,
                                 vit_adapter_placement=placement)).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.2)
    batch = make_batch(size, vocab=model.llm.args.vocab_size)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = []
    for fn in (reference_code_loss, lambda m, b, n: mma_loss(m, b)):
        loss = fn(model, batch, size.max_seq_len)
        grads.append((loss.detach(), torch.autograd.grad(loss, params)))
    (ref_loss, ref_grads), (new_loss, new_grads) = grads
    torch.testing.assert_close(new_loss, ref_loss, rtol=1e-5, atol=1e-5)
    vit_grad = sum(g.abs().sum() for (n, _), g in zip(
        [(n, p) for n, p in model.named_parameters() if p.requires_grad], new_grads)
        if n.startswith('vision.'))
    assert vit_grad > 0  # the ViT adapters are on the path being compared
    for g_ref, g_new in zip(ref_grads, new_grads):
        torch.testing.assert_close(g_new, g_ref, rtol=1e-4, atol=1e-6)


def test_train_benchmark_reports_every_mode():
    res = run_train_benchmark('tiny', steps=1, warmup=0)
    assert set(res) == {'reference-code', 'reference', 'mma'}
    assert abs(res['reference']['loss'] - res['mma']['loss']) < 1e-4
    assert abs(res['reference-code']['loss'] - res['mma']['loss']) < 1e-4
    # reference pads to max_seq_len, mma to the longest sample
    assert res['reference']['padded_fraction'] > res['mma']['padded_fraction']

import torch

from mma.benchmark import (build, make_batch, mma_loss, reference_loss, run_train_benchmark,
                           sizes)


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


def test_train_benchmark_reports_both_modes():
    res = run_train_benchmark('tiny', steps=1, warmup=0)
    assert set(res) == {'reference', 'mma'}
    assert abs(res['reference']['loss'] - res['mma']['loss']) < 1e-4
    # reference pads to max_seq_len, mma to the longest sample
    assert res['reference']['padded_fraction'] > res['mma']['padded_fraction']

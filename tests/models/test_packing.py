"""Packed rows give the padded batch's per-sample losses and gradients (mma.models.packing)."""
import pytest
import torch
import torch.nn.functional as F

import mma
from mma.datasets import mma_pack_collate
from mma.models.packing import padding_fraction, plan_packing, plan_rows
from mma.sequence import IGNORE_INDEX, pack
from mma.toy import tiny_lavin_cfg

K = 2  # visual tokens of the tiny ViT


def _batch(seed=0, lengths=(9, 6, 11, 5, 8, 7), images=(True, False, True, False, False, True)):
    """mma_pack_collate over rows made by mma.sequence.pack (image and text-only mixed)."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for n, has in zip(lengths, images):
        ids = torch.randint(3, 500, (n, ), generator=g).tolist()
        row = pack([1], ids[:2], ids[2:n - 3], ids[n - 3:], has)
        row['image'] = torch.randn(3, 32, 32, generator=g) if has else None
        samples.append(dict(inputs=row, data_samples={}))
    return mma_pack_collate(samples, max_tokens=24, mask='dense')['inputs']


def _model(seed=0):
    torch.manual_seed(seed)
    model = mma.build_model(tiny_lavin_cfg())
    with torch.no_grad():  # adapters and routers away from their zero init: routing matters
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.3)
    return model.eval()


def _per_sample_losses(model, hidden, labels):
    """(B,) summed cross entropy of each padded row."""
    logits = model.llm.head(hidden[:, :-1]).float()
    ce = F.cross_entropy(logits.transpose(1, 2), labels[:, 1:], reduction='none',
                         ignore_index=IGNORE_INDEX)
    return ce.sum(1)


def test_plan_rows_first_fit_decreasing():
    assert plan_rows([5, 9, 3, 7], 12) == [[1, 2], [3, 0]]
    assert plan_rows([20, 3], 12) == [[0], [1]]  # a longer sample: a row of its own
    padded, packed = padding_fraction([5, 9, 3, 7], 12)
    assert padded == pytest.approx(1 - 24 / 36) and packed == pytest.approx(0)


def test_packing_layout_positions_and_round_trip():
    lengths = torch.tensor([4, 3, 5])
    pk = plan_packing(lengths, 5, max_tokens=8)
    assert pk.shape == (2, 8)
    x = torch.arange(15.).view(3, 5, 1)
    back = pk.unpack(pk.pack(x))
    assert torch.equal(back[pk.real], x[pk.real])
    # rows: [sample 2 (5), sample 1 (3)] and [sample 0 (4), padding]
    assert pk.positions[0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert pk.segment[1].tolist() == [0, 0, 0, 0, -1, -1, -1, -1]
    m = pk.dense_mask()[0, 0]
    assert not m[6, 4] and not m[6, 5] and m[6, 6] and m[7, 6]  # no look into sample 2 / mod token


def test_packed_batch_equals_padded_losses_and_gradients():
    model = _model()
    inputs = _batch()
    seq = model.assemble(inputs['input_ids'], inputs['has_image'], inputs['visual_pos'],
                         inputs['images'], inputs['labels'])
    lengths = model.prompt_lengths(inputs)
    from mma.models.packing import packed_hidden_states
    hidden, labels, pk = packed_hidden_states(model.llm, seq['embeds'], seq['labels'], lengths,
                                              inputs['pack_max_tokens'], 'dense')
    assert pk.shape[0] < len(lengths)  # several samples share a row
    padded_hidden = model.hidden_states(seq['embeds'])
    real = pk.real
    diff = (pk.unpack(hidden) - padded_hidden)[real].abs().max()
    assert diff < 1e-5
    per_packed = _per_sample_losses(model, pk.unpack(hidden), seq['labels'])
    per_padded = _per_sample_losses(model, padded_hidden, seq['labels'])
    torch.testing.assert_close(per_packed, per_padded, atol=1e-5, rtol=0)

    grads = {}
    for packed in (False, True):
        model.zero_grad()
        batch = dict(inputs)
        if not packed:
            batch.pop('pack_max_tokens')
        model(batch, mode='loss')['loss'].backward()
        grads[packed] = {n: p.grad.clone() for n, p in model.named_parameters()
                         if p.requires_grad}
    assert set(grads[True]) == set(grads[False])
    for n, g in grads[False].items():
        torch.testing.assert_close(grads[True][n], g, atol=1e-5, rtol=0, msg=n)
    assert any(g.abs().sum() > 0 for n, g in grads[True].items() if 'router' in n)


def test_routing_reads_each_samples_own_modality_token():
    model = _model(1)
    inputs = _batch(1)
    losses = {}
    for flip in (False, True):
        batch = dict(inputs)
        seq = model.assemble(batch['input_ids'], batch['has_image'], batch['visual_pos'],
                             batch['images'], batch['labels'])
        if flip:  # sample 1's modality token changes: only its own loss may change
            seq['embeds'][1, 0] += 1.0
        from mma.models.packing import packed_hidden_states
        hidden, _, pk = packed_hidden_states(model.llm, seq['embeds'], seq['labels'],
                                             model.prompt_lengths(batch), 24, 'dense')
        losses[flip] = _per_sample_losses(model, pk.unpack(hidden), seq['labels'])
    changed = (losses[True] - losses[False]).abs() > 1e-6
    assert changed.tolist() == [False, True, False, False, False, False]


@pytest.mark.filterwarnings('ignore:flex_attention called without torch.compile')
@torch.no_grad()
def test_flex_block_mask_equals_dense_mask_forward():
    pytest.importorskip('torch.nn.attention.flex_attention')
    model = _model()
    inputs = _batch()
    seq = model.assemble(inputs['input_ids'], inputs['has_image'], inputs['visual_pos'],
                         inputs['images'], inputs['labels'])
    from mma.models.packing import packed_hidden_states
    lengths = model.prompt_lengths(inputs)
    dense, _, _ = packed_hidden_states(model.llm, seq['embeds'], None, lengths, 24, 'dense')
    flex, _, _ = packed_hidden_states(model.llm, seq['embeds'], None, lengths, 24, 'flex')
    torch.testing.assert_close(flex, dense, atol=1e-5, rtol=0)


def test_packing_needs_the_modality_token_in_the_sequence():
    """LLaVA's layout (modality_in_sequence=False) routes from outside the rows: packing, whose
    rows carry each sample's modality token, is refused with a message instead of misrouting."""
    torch.manual_seed(0)
    model = mma.build_model(dict(tiny_lavin_cfg(), modality_in_sequence=False))
    with pytest.raises(ValueError, match='modality_in_sequence=True'):
        model(_batch(), mode='loss')

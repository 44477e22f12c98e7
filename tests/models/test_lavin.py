import copy
import re

import pytest
import torch

import mma
from mma.models import IGNORE_INDEX
from mma.routers import RoutingContext
from mma.toy import tiny_lavin_cfg

K = 2  # visual tokens of the tiny ViT (feature_every=1, 2 blocks)


def make_batch(lengths=(9, 6, 11), has_image=(True, False, True), prompt_len=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    b, length = len(lengths), max(lengths)
    ids = torch.zeros(b, length, dtype=torch.long)
    labels = torch.full((b, length), IGNORE_INDEX)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(3, 500, (n, ), generator=g)
        ids[i, 0] = 1
        labels[i, prompt_len:n] = ids[i, prompt_len:n]
    has_image = torch.tensor(has_image)
    images = torch.randn(int(has_image.sum()), 3, 32, 32, generator=g)
    return dict(input_ids=ids, labels=labels, has_image=has_image,
                visual_pos=torch.full((b, ), 3), images=images,
                lengths=torch.tensor(lengths))


def sub_batch(batch, i):
    """Sample i alone, unpadded."""
    n = int(batch['lengths'][i])
    img_idx = int(batch['has_image'][:i].sum())
    has = bool(batch['has_image'][i])
    return dict(input_ids=batch['input_ids'][i:i + 1, :n], labels=batch['labels'][i:i + 1, :n],
                has_image=batch['has_image'][i:i + 1], visual_pos=batch['visual_pos'][i:i + 1],
                images=batch['images'][img_idx:img_idx + 1] if has else None,
                lengths=batch['lengths'][i:i + 1])


def randomise_adapters(model, std=0.3):
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, std)
    return model


@pytest.fixture
def model():
    torch.backends.mha.set_fastpath_enabled(False)
    return mma.build_model(tiny_lavin_cfg()).eval()


def test_adapted_model_equals_frozen_base_at_init(model):
    base_cfg = tiny_lavin_cfg()
    base_cfg.update(llm_adapter=None, vit_adapter=None)
    base = mma.build_model(base_cfg).eval()
    frozen = {k: v for k, v in model.state_dict().items() if k in base.state_dict()}
    assert set(frozen) == set(base.state_dict())
    base.load_state_dict(frozen)
    batch = make_batch()
    assert torch.equal(model(batch), base(batch))


def test_trainable_set_is_exactly_the_adapters(model):
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    pattern = re.compile(r'^(llm\.layers\.\d+\.adapter_attn\.|vision\.tower\.transformer\.'
                         r'resblocks\.\d+\.ln_1\.adapter\.|projector\.|modality_embedding\.)')
    assert trainable and all(pattern.match(n) for n in trainable)
    expected = {n for n, _ in model.named_parameters() if pattern.match(n)}
    assert trainable == expected
    # 2 LLM blocks x (down 64*8+8, 2 experts x (64*4+64), router 2*64+2), 2 ViT blocks (width 64)
    per_block = 64 * 8 + 8 + 2 * (64 * 4 + 64) + 2 * 64 + 2
    assert sum(p.numel() for n, p in model.named_parameters() if n in trainable) == (
        2 * per_block + 2 * per_block + (64 * 16 + 16 + 16 * 64 + 64) + 2 * 64)
    model.train()
    randomise_adapters(model)  # so that gradients reach every adapter tensor
    model(make_batch(), mode='loss')['loss'].backward()
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, n
        else:
            assert p.grad is None, n


def test_sequence_assembly_matches_reference_layout(model):
    """Compare with a per-sample re-implementation of the reference's insert_image_embeds."""
    batch = make_batch()
    seq = model.assemble(batch['input_ids'], batch['has_image'], batch['visual_pos'],
                         batch['images'], batch['labels'])
    emb, lab = seq['embeds'], seq['labels']
    tok = model.llm.tok_embeddings
    vis = model.encode_images(batch['images'])
    t = 1 + batch['input_ids'].shape[1] + K
    assert emb.shape[:2] == lab.shape == (3, t)
    img = 0
    for i in range(3):
        ids, n, p = batch['input_ids'][i], int(batch['lengths'][i]), int(batch['visual_pos'][i])
        parts = [model.modality_embedding.weight[int(batch['has_image'][i])][None]]
        labs = [torch.tensor([IGNORE_INDEX])]
        if batch['has_image'][i]:
            parts += [tok(ids[:p]), vis[img], tok(ids[p:n])]
            labs += [batch['labels'][i, :p], torch.full((K, ), IGNORE_INDEX),
                     batch['labels'][i, p:n]]
            img += 1
        else:
            parts += [tok(ids[:n])]
            labs += [batch['labels'][i, :n]]
        ref, ref_lab = torch.cat(parts), torch.cat(labs)
        torch.testing.assert_close(emb[i, :len(ref)], ref)
        assert torch.equal(lab[i, :len(ref)], ref_lab)
        assert (lab[i, len(ref):] == IGNORE_INDEX).all()


def test_mixed_padded_batch_equals_solo(model):
    randomise_adapters(model)
    batch = make_batch()
    logits = model(batch)
    loss_parts = []
    for i in range(3):
        solo = model(sub_batch(batch, i))
        n = solo.shape[1]
        torch.testing.assert_close(logits[i:i + 1, :n], solo, rtol=1e-5, atol=1e-5)
        loss_parts.append(model(sub_batch(batch, i), mode='loss')['loss'])
    # token-mean over the batch = weighted mean of per-sample means
    counts = torch.tensor([int(batch['lengths'][i]) - 4 for i in range(3)], dtype=torch.float)
    expected = (torch.stack(loss_parts) * counts).sum() / counts.sum()
    torch.testing.assert_close(model(batch, mode='loss')['loss'], expected, rtol=1e-5, atol=1e-6)


def test_llm_router_weights_identical_per_modality(model):
    randomise_adapters(model)
    batch = make_batch(lengths=(9, 6, 11, 7), has_image=(True, False, True, False))
    seq = model.assemble(batch['input_ids'], batch['has_image'], batch['visual_pos'],
                         batch['images'])
    ctx = RoutingContext(token_index=torch.zeros(4, dtype=torch.long), cache={})
    model.hidden_states(seq['embeds'], ctx)
    llm_weights = [w for m, w in ctx.cache.items() if m in set(model.llm.modules())]
    assert len(llm_weights) == 2
    for w in llm_weights:  # (B, 1, 2)
        assert torch.equal(w[0], w[2]) and torch.equal(w[1], w[3])
        assert not torch.allclose(w[0], w[1])


def test_modality_token_acts_only_through_routers():
    """With plain (router-less) adapters, the modality embedding must not change any output
    position > 0: no later position attends to token 0."""
    cfg = tiny_lavin_cfg(router=False)
    m = randomise_adapters(mma.build_model(cfg).eval())
    batch = make_batch()
    out = m(batch)
    with torch.no_grad():
        m.modality_embedding.weight.add_(5.0)
    out2 = m(batch)
    torch.testing.assert_close(out[:, 1:], out2[:, 1:], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(out[:, 0], out2[:, 0])


def test_text_only_batch_never_calls_vit(model):
    calls = []
    model.vision.register_forward_hook(lambda *a: calls.append(1))
    batch = make_batch(has_image=(False, False, False))
    batch['images'] = None
    model(batch, mode='loss')
    assert calls == []
    model(make_batch(), mode='loss')
    assert calls == [1]


def test_vit_output_of_a_sample_is_independent_of_batch_mates(model):
    randomise_adapters(model)
    images = torch.randn(3, 3, 32, 32)
    together = model.encode_images(images)
    for i in range(3):
        torch.testing.assert_close(model.encode_images(images[i:i + 1]), together[i:i + 1],
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('placement,slots', [('attn', {'adapter_attn'}), ('ffn', {'adapter_ffn'}),
                                             ('block', {'adapter_attn', 'adapter_ffn'})])
def test_llm_adapter_placement(placement, slots):
    m = mma.build_model(tiny_lavin_cfg(placement=placement))
    for blk in m.llm.layers:
        assert {n for n in ('adapter_attn', 'adapter_ffn') if getattr(blk, n) is not None} == slots


def test_loss_ignores_prompt_and_padding(model):
    randomise_adapters(model)
    batch = make_batch()
    loss = model(batch, mode='loss')['loss']
    changed = copy.deepcopy(batch)
    changed['input_ids'][0, 9:] = 7  # padding of sample 0
    torch.testing.assert_close(model(changed, mode='loss')['loss'], loss)
    changed['labels'][1, 3] = changed['input_ids'][1, 3]  # one more target changes the loss
    assert not torch.allclose(model(changed, mode='loss')['loss'], loss)


def test_init_weights_prints_no_per_parameter_report_without_a_log_file():
    """Outside a Runner (chat, merging, benchmarks) mmengine would print a few lines per parameter
    to the console; LaVIN.init_weights keeps that report for a Runner's log file only."""
    import logging

    from mmengine.logging import MMLogger

    import mma
    from mma.toy import tiny_lavin_cfg
    model = mma.build_model(tiny_lavin_cfg())
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger.addHandler(handler)
    level = logger.level
    try:
        model.init_weights()
        logger.info('still logging at INFO afterwards')
    finally:
        logger.removeHandler(handler)
    assert logger.level == level
    messages = [r.getMessage() for r in records]
    assert not any('init_weights' in m for m in messages), messages[:3]
    assert messages == ['still logging at INFO afterwards']

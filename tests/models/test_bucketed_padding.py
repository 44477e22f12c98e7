"""Bucketed padding (``mma_collate(pad_to_multiple_of=N)``) changes shapes, never results."""
import pytest
import torch

from mma.datasets import ScienceQADataset, mma_collate


def _dataset(root, tokenizer, test_mode):
    return ScienceQADataset(str(root), split='test',
                            prompt_format='QCM-ALE', test_mode=test_mode,
                            pipeline=[dict(type='LoadLaVINImage', size=32),
                                      dict(type='TokenizeForLaVIN', tokenizer=tokenizer,
                                           num_visual_tokens=2, with_answer=not test_mode)])


def test_bucketed_batch_gives_the_same_loss_and_gradients(tiny_model, tokenizer, sqa_root):
    items = [_dataset(sqa_root, tokenizer, False)[i] for i in range(5)]
    plain = mma_collate(items)['inputs']
    bucketed = mma_collate(items, pad_to_multiple_of=64)['inputs']
    longest = plain['input_ids'].shape[1]
    assert bucketed['input_ids'].shape[1] % 64 == 0
    assert bucketed['input_ids'].shape[1] > longest  # the bucket really adds padding here
    assert torch.equal(bucketed['input_ids'][:, :longest], plain['input_ids'])
    assert torch.equal(bucketed['lengths'], plain['lengths'])
    model = tiny_model.eval()  # no dropout: both runs must compute the same function
    params = [p for p in model.parameters() if p.requires_grad]
    results = []
    for inputs in (plain, bucketed):
        loss = model(inputs, mode='loss')['loss']
        results.append((loss.detach(), torch.autograd.grad(loss, params)))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-6, atol=1e-6)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)


def test_bucketed_batch_gives_the_same_predictions(tiny_model, tokenizer, sqa_root):
    ds = _dataset(sqa_root, tokenizer, True)
    items = [ds[i] for i in range(6)]
    tiny_model.generation_cfg = dict(max_new_tokens=8)
    plain, bucketed = mma_collate(items), mma_collate(items, pad_to_multiple_of=64)
    assert bucketed['inputs']['input_ids'].shape[1] % 64 == 0
    out_plain = tiny_model.generate(plain['inputs'])
    out_bucketed = tiny_model.generate(bucketed['inputs'])
    assert out_bucketed.texts == out_plain.texts


def test_pad_to_multiple_of_must_be_positive(tokenizer, sqa_root):
    items = [_dataset(sqa_root, tokenizer, False)[0]]
    with pytest.raises(ValueError, match='pad_to_multiple_of'):
        mma_collate(items, pad_to_multiple_of=0)

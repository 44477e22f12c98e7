"""Answer-aware early stop: same ScienceQA predictions as full decoding, far fewer tokens."""
import torch

from mma.datasets import LoadLaVINImage, ScienceQADataset, TokenizeForLaVIN, mma_collate
from mma.evaluation import ScienceQAMetric
from mma.models.generation import ANSWER_PATTERN

EXPLANATION = ' BECAUSE: the sun is red and the water is blue so the plant can swim and the dog can run'


def train_tiny(model, ds, tokenizer, steps=40):
    """Fit the evaluation prompts of ``ds`` to a long answer (so that full decoding is long)."""
    load, tokenize = LoadLaVINImage(size=32), TokenizeForLaVIN(tokenizer, num_visual_tokens=2)
    items = []
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        answer = f"The answer is {chr(65 + info['answer_idx'])}.{EXPLANATION}"
        items.append(tokenize(load(dict(info, answer=answer))))
    batch = mma_collate(items)
    model.requires_grad_(True).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = model(batch['inputs'], mode='loss')['loss']
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), float(loss.detach())


def evaluate(model, ds, **cfg):
    metric = ScienceQAMetric()
    for start in range(0, len(ds), 4):
        batch = mma_collate([ds[i] for i in range(start, min(start + 4, len(ds)))])
        metric.process(batch, model.predict(batch['inputs'], batch['data_samples']))
    results = list(metric.results)
    return results, metric.evaluate(len(ds))


def test_early_stop_same_predictions_fewer_tokens(tiny_model, tokenizer, sqa_root):
    torch.manual_seed(0)
    ds = ScienceQADataset(str(sqa_root), split='test', prompt_format='QCM-ALE', test_mode=True,
                          pipeline=[dict(type='LoadLaVINImage', size=32),
                                    dict(type='TokenizeForLaVIN', tokenizer=tokenizer,
                                         num_visual_tokens=2, with_answer=False)])
    model, loss = train_tiny(tiny_model, ds, tokenizer)
    assert loss < 0.2
    model.generation_cfg = dict(max_new_tokens=64)
    full, m_full = evaluate(model, ds)
    model.generation_cfg = dict(max_new_tokens=64, stop_pattern=ANSWER_PATTERN)
    early, m_early = evaluate(model, ds)
    assert [r['pred'] for r in early] == [r['pred'] for r in full]
    assert m_full['sqa/unparseable'] == 0 and m_full['sqa/Avg'] == m_early['sqa/Avg']
    assert all(f['pred_text'].startswith(e['pred_text']) for e, f in zip(early, full))
    n_full = sum(r['num_generated'] for r in full)
    n_early = sum(r['num_generated'] for r in early)
    ratio = n_early / n_full
    print(f'early stop decoded {n_early} tokens vs {n_full} with full decoding '
          f'(ratio {ratio:.3f}); vs 64/question: {n_early / (64 * len(ds)):.3f}')
    assert ratio < 0.4

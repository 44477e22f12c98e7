"""Benchmark datasets read their real file layouts and follow the data contract."""
import json
import math

import torch
from PIL import Image

from mma.datasets import (COCOCaptionDataset, MMEDataset, ScienceQADataset, TruthfulQADataset,
                          VQAv2Dataset, mma_collate)


def img(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new('RGB', (40, 30), (200, 10, 10)).save(path)


def predict_pipeline(tokenizer):
    return [dict(type='LoadLaVINImage', size=32),
            dict(type='TokenizeForLaVIN', tokenizer=tokenizer, num_visual_tokens=2,
                 with_answer=False)]


def test_scienceqa_evaluation_uses_the_training_dataset(tokenizer, sqa_root):
    ds = ScienceQADataset(str(sqa_root), split='test', prompt_format='QCM-ALE', test_mode=True,
                          pipeline=predict_pipeline(tokenizer))
    assert len(ds) == 12
    assert ds.get_data_info(0)['prompt'] == ('Question: which animal can fly\nContext: the sun '
                                             'is red\nOptions: (A) cat (B) dog\nResponse:')
    assert ds.get_data_info(1)['prompt'].split('\n')[1] == 'Context: N/A'
    b = mma_collate([ds[0], ds[1]])
    prefix = tokenizer.encode('Image: ')
    prompt = tokenizer.encode(ds.get_data_info(0)['prompt'])
    # the text stops after "Response:" (no answer, no labels)
    n = int(b['inputs']['lengths'][0])
    assert b['inputs']['input_ids'][0, :n].tolist() == [tokenizer.bos_id] + prefix + prompt
    assert b['inputs']['labels'] is None
    assert b['inputs']['visual_pos'][0] == 1 + len(prefix)
    assert b['inputs']['images'].shape == (1, 3, 32, 32)
    assert b['inputs']['has_image'].tolist() == [True, False]
    s0, s1 = b['data_samples']
    assert s0['has_hint'] and not s1['has_hint'] and (s0['answer_idx'], s1['answer_idx']) == (0, 1)


def test_coco_caption(tmp_path, tokenizer):
    images = [dict(filepath='val2014', filename='a.jpg', split='test', cocoid=7,
                   sentences=[dict(raw='A red square.'), dict(raw='a red box')]),
              dict(filepath='train2014', filename='b.jpg', split='restval', cocoid=8,
                   sentences=[dict(raw='x'), dict(raw='y')])]
    (tmp_path / 'dataset_coco.json').write_text(json.dumps(dict(images=images)))
    img(tmp_path / 'val2014' / 'a.jpg')
    img(tmp_path / 'train2014' / 'b.jpg')
    test = COCOCaptionDataset(str(tmp_path), tokenizer, split='test', image_size=32)
    assert len(test) == 1 and test[0]['data_samples']['captions'] == ['A red square.', 'a red box']
    train = COCOCaptionDataset(str(tmp_path), tokenizer, split='train', with_answer=True,
                               image_size=32)
    assert len(train) == 2  # restval counts as train, one item per caption
    it = train[0]['inputs']
    ans = tokenizer.encode('x') + [tokenizer.eos_id]
    assert it['input_ids'][-len(ans):].tolist() == ans and it['labels'][-len(ans):].tolist() == ans
    assert all(l == -100 for l in it['labels'][:-len(ans)])


def test_vqav2(tmp_path, tokenizer):
    qs = dict(questions=[dict(image_id=5, question='What color?', question_id=50)])
    anns = dict(annotations=[dict(question_id=50, image_id=5, answer_type='other',
                                  multiple_choice_answer='red',
                                  answers=[dict(answer='red', answer_id=i + 1) for i in range(10)])])
    (tmp_path / 'v2_OpenEnded_mscoco_val2014_questions.json').write_text(json.dumps(qs))
    (tmp_path / 'v2_mscoco_val2014_annotations.json').write_text(json.dumps(anns))
    img(tmp_path / 'val2014' / 'COCO_val2014_000000000005.jpg')
    ds = VQAv2Dataset(str(tmp_path), tokenizer, split='val', image_size=32)
    s = ds[0]
    assert s['data_samples']['answers'] == ['red'] * 10
    assert s['inputs']['image'].shape == (3, 32, 32)
    assert ds.records[0]['prompt'].startswith('Instruction: What color? Answer the question')


def test_truthfulqa_scoring(tmp_path, tokenizer, tiny_model):
    rows = [dict(question='What is red?', mc1_targets={'the sun': 1, 'the sky': 0},
                 mc2_targets={'the sun': 1, 'a dog': 1, 'the sky': 0})]
    (tmp_path / 'mc_task.json').write_text(json.dumps(rows))
    ds = TruthfulQADataset(str(tmp_path), tokenizer)
    s = ds[0]['data_samples']
    assert ds.records[0]['choices'] == ['the sun', 'the sky', 'a dog']
    assert s['mc1_index'] == [0, 1] and s['mc2_index'] == [0, 2, 1] and s['mc2_labels'] == [1, 1, 0]
    batch = mma_collate([ds[0]])
    choices = ds.records[0]['choices']
    assert batch['inputs']['choice_ids'] == [[tokenizer.encode(c) for c in choices]]
    out = tiny_model.predict(batch['inputs'], batch['data_samples'])[0]['choice_logliks']
    # reference: the training forward on prompt + choice, log-probs of the choice tokens
    prompt = ds[0]['inputs']['input_ids'].tolist()
    for c, got in zip(ds.records[0]['choices'], out):
        cids = tokenizer.encode(c)
        ids = torch.tensor([prompt + cids])
        with torch.no_grad():
            logits = tiny_model(dict(input_ids=ids, has_image=torch.tensor([False])), mode='tensor')
        logp = torch.log_softmax(logits[0].float(), -1)
        start = 1 + len(prompt)  # the modality token shifts positions by one
        want = sum(float(logp[start + j - 1, t]) for j, t in enumerate(cids))
        assert math.isclose(got, want, abs_tol=1e-4)


def test_mme_both_layouts(tmp_path, tokenizer):
    (tmp_path / 'scene' / 'questions_answers_YN').mkdir(parents=True)
    img(tmp_path / 'scene' / 'images' / '1.jpg')
    (tmp_path / 'scene' / 'questions_answers_YN' / '1.txt').write_text(
        'Is this a beach? Please answer yes or no.\tYes\nIs this a room? Please answer yes or no.\tNo\n')
    img(tmp_path / 'count' / '2.png')
    (tmp_path / 'count' / '2.txt').write_text('Are there two cats?\tNo\nIs there one cat?\tYes\n')
    ds = MMEDataset(str(tmp_path), tokenizer, image_size=32)
    assert [(r['data_sample']['category'], r['data_sample']['answer']) for r in ds.records] == [
        ('count', 'No'), ('count', 'Yes'), ('scene', 'Yes'), ('scene', 'No')]
    assert ds.records[2]['prompt'] == ('Instruction: Is this a beach? Please answer yes or no.\n'
                                       'Response:')
    assert ds[0]['inputs']['image'].shape == (3, 32, 32)

"""The COCO caption, VQAv2, MME and TruthfulQA evaluation configs end to end, as
``tools/test.py`` runs them (config -> datasets in the real file layouts -> model -> Runner test
loop -> metric), with a tiny model whose output layer is set to always predict one token, so that
every prediction, and with it every metric, can be computed by hand."""
import copy
import json
import math
import os
import re

import pytest
import torch
from mmengine.config import Config
from PIL import Image
from torch import nn

import mma
from mma.engine import runner_with_model, sync_data_with_model
from mma.errors import MMAUserError
from mma.toy import TINY_VISION_CFG, tiny_lavin_cfg

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _image(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new('RGB', (40, 30), (20, 200, 10)).save(path)


def _piece(tokenizer, word: str) -> int:
    ids = tokenizer.encode(word)
    assert len(ids) == 1, f'{word!r} is not one piece of the test tokenizer'
    return ids[0]


#: A 336-px tower with 576 patch tokens (24 x 24 patches of 14 px, CLS dropped, as LLaVA-1.5's
#: ViT-L/14-336), tiny in width and depth.
PATCH_336_VISION = dict(type='CLIPViT', model_name=None, quick_gelu=True, feature_type='patch',
                        patch_layer=-1, vision_cfg=dict(TINY_VISION_CFG, image_size=336,
                                                        patch_size=14))


def _evaluate(name: str, data_root, tokenizer_path, work_dir, token: int, bias: float = 30.0,
              vision: dict = None, check_data=None):
    """Run configs/``name`` on ``data_root`` with the tiny model (its ViT ``vision`` if given)
    whose logits are ``bias`` on ``token`` and 0 elsewhere, whatever the input; return (metrics,
    output bias). The data config is the file's: tokenizer, image size and visual tokens follow
    the model (``check_data(cfg, model)`` sees the config as the Runner fills it)."""
    cfg = Config.fromfile(os.path.join(REPO, 'configs', name))
    model_cfg = tiny_lavin_cfg(vocab_size=512, llm=dict(max_seq_len=1024))
    if vision is not None:
        model_cfg['vision'] = vision
    model_cfg['tokenizer'] = dict(type='SentencePieceTokenizer', model_path=tokenizer_path)
    if cfg.model.get('generation_cfg') is not None:  # the config's decoding settings
        model_cfg['generation_cfg'] = cfg.model.generation_cfg.to_dict()
    cfg.model = model_cfg
    ds = cfg.test_dataloader.dataset
    assert not {'tokenizer', 'image_size', 'num_visual_tokens'} & set(ds)  # all from the model
    ds.update(data_root=str(data_root))
    cfg.test_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.work_dir = str(work_dir)
    cfg.test_evaluator.prediction_file = os.path.join(str(work_dir), 'predictions.json')
    torch.manual_seed(0)
    model = mma.build_model(cfg.model).eval()
    head = model.llm.output
    # a module put where the head was: constant logits, so greedy decoding repeats `token`
    model.llm.output = nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        model.llm.output.weight.zero_()
        model.llm.output.bias.zero_()
        model.llm.output.bias[token] = bias
    if check_data is not None:
        check_data(copy.deepcopy(cfg), model)
    metrics = runner_with_model(cfg, model).test()
    assert os.path.isfile(cfg.test_evaluator.prediction_file)
    return metrics, model.llm.output.bias.detach().clone()


def _repeated(tokenizer, token: int, n: int) -> str:
    return tokenizer.decode([token] * n).strip()


def _follows_336_patch_tower(cfg, model):
    """The dataset config, as the Runner fills it, has the 336-px tower's facts."""
    assert model.num_visual_tokens == 576 and tuple(model.vision.image_size) == (336, 336)
    sync_data_with_model(cfg, model)
    ds = cfg.test_dataloader.dataset
    assert (ds.num_visual_tokens, tuple(ds.image_size)) == (576, (336, 336))
    assert ds.tokenizer == cfg.model.tokenizer
    from mmengine.registry import DefaultScope

    from mma.registry import DATASETS
    with DefaultScope.overwrite_default_scope('mma'):
        built = DATASETS.build(ds)
    assert tuple(built[0]['inputs']['image'].shape) == (3, 336, 336)


VISION = pytest.mark.parametrize('vision,check_data', [
    (None, None), (PATCH_336_VISION, _follows_336_patch_tower)], ids=['lavin-224', 'patch-336'])


@VISION
def test_vqav2_eval_config(tmp_path, tokenizer, tokenizer_path, vision, check_data):
    red = _piece(tokenizer, 'red')
    pred = _repeated(tokenizer, red, Config.fromfile(
        os.path.join(REPO, 'configs', '_base_', 'datasets', 'vqav2.py')).generation_cfg[
            'max_new_tokens'])
    # (answer type, the 10 human answers): official accuracy averages min(#match / 3, 1) over
    # the 10 leave-one-out subsets: 3 matches -> (3 * 2/3 + 7 * 1) / 10 = 0.9, 1 match -> 0.3
    rows = [('other', [pred] * 3 + ['blue'] * 7), ('other', [pred] + ['blue'] * 9),
            ('number', ['two'] * 10), ('yes/no', [pred] * 10)]
    qs, anns = [], []
    for i, (kind, answers) in enumerate(rows):
        qs.append(dict(image_id=i + 1, question=f'What color is {i}?', question_id=10 + i))
        anns.append(dict(question_id=10 + i, image_id=i + 1, answer_type=kind,
                         multiple_choice_answer=answers[0],
                         answers=[dict(answer=a, answer_id=j + 1) for j, a in enumerate(answers)]))
        _image(tmp_path / 'vqa' / 'val2014' / f'COCO_val2014_{i + 1:012d}.jpg')
    (tmp_path / 'vqa' / 'v2_OpenEnded_mscoco_val2014_questions.json').write_text(
        json.dumps(dict(questions=qs)))
    (tmp_path / 'vqa' / 'v2_mscoco_val2014_annotations.json').write_text(
        json.dumps(dict(annotations=anns)))
    metrics, _ = _evaluate('lavin_7b_vqav2_eval.py', tmp_path / 'vqa', tokenizer_path,
                           tmp_path / 'work', red, vision=vision, check_data=check_data)
    expected = {'vqav2/accuracy': (90 + 30 + 0 + 100) / 4, 'vqav2/other': 60.0,
                'vqav2/number': 0.0, 'vqav2/yes/no': 100.0}
    assert metrics == pytest.approx(expected, abs=1e-9)
    with open(tmp_path / 'work' / 'predictions.json') as f:
        assert json.load(f) == [dict(question_id=10 + i, answer=pred) for i in range(4)]


def test_coco_caption_eval_config(tmp_path, tokenizer, tokenizer_path):
    red = _piece(tokenizer, 'red')
    n = Config.fromfile(os.path.join(REPO, 'configs', '_base_', 'datasets',
                                     'coco_caption.py')).generation_cfg['max_new_tokens']
    pred = _repeated(tokenizer, red, n)
    assert pred.split() == ['red'] * n
    # image 1: the caption is its only reference; image 2: no word in common. BLEU-k pools the
    # n-gram counts of both: (n - k + 1) matches of 2 (n - k + 1) -> 1/2 for every k (the
    # hypotheses are longer than the references: no brevity penalty). CIDEr-D: 10 for the exact
    # match (cosine 1, no length penalty), 0 for image 2 -> mean 5 (x100 in the metric).
    images = [dict(filepath='val2014', filename='a.jpg', split='test', cocoid=1,
                   sentences=[dict(raw=pred)]),
              dict(filepath='val2014', filename='b.jpg', split='test', cocoid=2,
                   sentences=[dict(raw='a blue cat')]),
              dict(filepath='train2014', filename='c.jpg', split='train', cocoid=3,
                   sentences=[dict(raw='not evaluated')])]
    (tmp_path / 'coco').mkdir()
    (tmp_path / 'coco' / 'dataset_coco.json').write_text(json.dumps(dict(images=images)))
    for name in ('val2014/a.jpg', 'val2014/b.jpg', 'train2014/c.jpg'):
        _image(tmp_path / 'coco' / name)
    metrics, _ = _evaluate('lavin_7b_coco_caption_eval.py', tmp_path / 'coco', tokenizer_path,
                           tmp_path / 'work', red)
    expected = {f'coco/BLEU-{k}': 50.0 for k in range(1, 5)}
    expected['coco/CIDEr'] = 500.0
    assert metrics == pytest.approx(expected, rel=1e-6)
    with open(tmp_path / 'work' / 'predictions.json') as f:
        assert json.load(f) == [dict(image_id=1, caption=pred), dict(image_id=2, caption=pred)]


@VISION
def test_mme_eval_config(tmp_path, tokenizer, tokenizer_path, vision, check_data):
    yes = _piece(tokenizer, 'yes')  # every answer starts with "yes": parsed as yes
    root = tmp_path / 'MME_Benchmark_release_version'
    # existence (perception; images and .txt side by side): 3 of 4 right, 1 of 2 images with
    # both right -> acc 75 + acc+ 50; commonsense_reasoning (cognition; images/ and
    # questions_answers_YN/): both answers No -> 0 + 0
    q = 'Is there a {}? Please answer yes or no.'
    for stem, answers in (('1', ('Yes', 'No')), ('2', ('Yes', 'Yes'))):
        _image(root / 'existence' / f'{stem}.jpg')
        (root / 'existence' / f'{stem}.txt').write_text(''.join(
            f'{q.format(w)}\t{a}\n' for w, a in zip(('cat', 'dog'), answers)))
    _image(root / 'commonsense_reasoning' / 'images' / '3.png')
    (root / 'commonsense_reasoning' / 'questions_answers_YN').mkdir(parents=True)
    (root / 'commonsense_reasoning' / 'questions_answers_YN' / '3.txt').write_text(
        f'{q.format("sun")}\tNo\n{q.format("mat")}\tNo\n')
    metrics, _ = _evaluate('lavin_13b_chatbot_mme_eval.py', root, tokenizer_path,
                           tmp_path / 'work', yes, vision=vision, check_data=check_data)
    expected = {'mme/existence/acc': 75.0, 'mme/existence/acc+': 50.0,
                'mme/existence/score': 125.0, 'mme/commonsense_reasoning/acc': 0.0,
                'mme/commonsense_reasoning/acc+': 0.0, 'mme/commonsense_reasoning/score': 0.0,
                'mme/perception': 125.0, 'mme/cognition': 0.0}
    assert metrics == pytest.approx(expected, abs=1e-9)


def test_truthfulqa_eval_config(tmp_path, tokenizer, tokenizer_path):
    red = _piece(tokenizer, 'red')
    rows = [dict(question='What is red?', mc1_targets={'red': 1, 'blue': 0},
                 mc2_targets={'red': 1, 'the sky': 0, 'red red': 1}),
            dict(question='What is blue?', mc1_targets={'blue': 1, 'red': 0, 'the sun': 0},
                 mc2_targets={'blue': 1, 'red': 0})]
    (tmp_path / 'tqa').mkdir()
    (tmp_path / 'tqa' / 'mc_task.json').write_text(json.dumps(rows))
    metrics, bias = _evaluate('lavin_13b_chatbot_truthfulqa_eval.py', tmp_path / 'tqa',
                              tokenizer_path, tmp_path / 'work', red, bias=2.0)
    # constant logits: a choice's log-likelihood is the sum of log_softmax(bias) over its tokens
    logp = torch.log_softmax(bias.double(), -1)

    def loglik(choice: str) -> float:
        return sum(float(logp[t]) for t in tokenizer.encode(choice))

    def mc2(targets: dict) -> float:
        p = {c: math.exp(loglik(c)) for c in targets}
        return sum(v for c, v in p.items() if targets[c]) / sum(p.values())

    assert loglik('red') > loglik('blue') and loglik('red') > loglik('the sun')
    expected = {'truthfulqa/MC1': 50.0,  # "red" wins question 1, loses question 2
                'truthfulqa/MC2': 100.0 * (mc2(rows[0]['mc2_targets']) +
                                           mc2(rows[1]['mc2_targets'])) / 2}
    assert 0 < expected['truthfulqa/MC2'] < 100
    assert metrics == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize('name,key,value', [
    ('lavin_13b_chatbot_mme_eval.py', 'image_size', 224),
    ('lavin_7b_vqav2_eval.py', 'num_visual_tokens', 6),
    ('lavin_7b_sqa.py', 'pipeline.1.num_visual_tokens', 6)])
def test_a_hand_set_mismatch_with_the_336_patch_tower_is_an_error(tokenizer_path, name, key,
                                                                   value):
    """A count set by hand that is not the model's stops before anything is built, naming the
    key, the same way for the benchmark datasets as for ScienceQA's pipeline."""
    cfg = Config.fromfile(os.path.join(REPO, 'configs', name))
    model_cfg = tiny_lavin_cfg(vocab_size=512, llm=dict(max_seq_len=1024))
    model_cfg.update(vision=PATCH_336_VISION,
                     tokenizer=dict(type='SentencePieceTokenizer', model_path=tokenizer_path))
    cfg.model = model_cfg
    cfg.merge_from_dict({f'test_dataloader.dataset.{key}': value})
    theirs = '576 visual tokens per image' if 'visual' in key else 'takes (336, 336) images'
    with pytest.raises(MMAUserError, match=rf'test_dataloader\.dataset\.{key}={value} but .*'
                       rf'{re.escape(theirs)}.*remove the key'):
        sync_data_with_model(cfg)

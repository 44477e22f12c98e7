"""Caption, VQAv2, TruthfulQA and MME metrics on hand-computed examples."""
import math

import pytest

from mma.evaluation import (COCOCaptionMetric, MMEMetric, TruthfulQAMetric, VQAv2Metric, bleu,
                            cider_d, mc1, mc2, normalize_answer, parse_yes_no, ptb_tokenize,
                            vqa_accuracy)


def test_bleu_hand_computed():
    # p1..p4 = 5/6, 3/5, 2/4, 1/3; equal lengths: no brevity penalty
    b = bleu(['a cat sits on the mat'], [['a cat sits on a mat']])
    assert math.isclose(b[3], (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3)**0.25, rel_tol=1e-6)
    assert math.isclose(b[0], 5 / 6, rel_tol=1e-6)
    # brevity penalty: hypothesis 3 words vs closest reference 6 words
    short = bleu(['a cat sits'], [['a cat sits on a mat', 'x y z w v u t s']])
    assert math.isclose(short[0], math.exp(1 - 6 / 3), rel_tol=1e-6)


def test_cider_hand_computed():
    # two images; "a" is in both (idf 0), "cat"/"dog"/"a cat"/"a dog" in one (idf log 2):
    # n=1 and n=2 cosines are 1, n=3, 4 empty -> mean 0.5, x10 -> 5
    mean, per = cider_d(['a cat', 'a dog'], [['a cat'], ['a dog']])
    assert math.isclose(mean, 5.0) and per == pytest.approx([5.0, 5.0])
    m = COCOCaptionMetric()
    m.process(None, [dict(image_id=1, pred_text='A cat.', captions=['a cat']),
                     dict(image_id=2, pred_text='a dog', captions=['A dog!'])])
    assert math.isclose(m.evaluate(2)['coco/CIDEr'], 500.0)


def test_caption_scores_equal_pycocoevalcap():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    caps = {
        1: (['a man riding a horse on a beach', 'a person rides a brown horse',
             'a man on a horse near the ocean'], 'a man riding a horse on the beach'),
        2: (['two dogs play in the grass', 'a pair of dogs running on a lawn',
             'dogs playing with a ball on grass'], 'two dogs playing on the grass'),
        3: (['a plate of food with broccoli', 'a dinner plate with meat and vegetables',
             'broccoli and rice on a white plate'], 'a plate with broccoli and rice'),
        4: (['a red bus on a city street', 'a double decker bus driving down the road',
             'a bus parked near a building'], 'a red double decker bus on the street'),
    }
    gts = {k: v[0] for k, v in caps.items()}
    res = {k: [v[1]] for k, v in caps.items()}
    ref_bleu, _ = Bleu(4).compute_score(gts, res)
    ref_cider, _ = Cider().compute_score(gts, res)
    keys = sorted(caps)
    ours_bleu = bleu([res[k][0] for k in keys], [gts[k] for k in keys])
    ours_cider, _ = cider_d([res[k][0] for k in keys], [gts[k] for k in keys])
    assert ours_bleu == pytest.approx(ref_bleu, rel=1e-9)
    assert ours_cider == pytest.approx(ref_cider, rel=1e-9)
    assert ref_cider > 0.1 and ref_bleu[3] > 0.1


def test_ptb_tokenize():
    assert ptb_tokenize("The dog's ball isn't red, it's blue!") == "the dog 's ball is n't red it 's blue"
    assert ptb_tokenize('A man (on a bench) 3.5 m.') == 'a man on a bench 3.5 m'


@pytest.mark.parametrize('raw,norm', [
    ('Two.', '2'), ('the dog', 'dog'), ('dont', "don't"), ('yes!', 'yes'), ('3,000', '3000'),
    ('1.5', '1.5'), ('A Red-Ball', 'red ball'), ('none', '0'), ("it's ten o'clock", "it's 10 o'clock"),
])
def test_vqa_normalization(raw, norm):
    assert normalize_answer(raw) == norm


def test_vqa_accuracy_official_form():
    gts = ['2'] * 3 + ['3'] * 7
    assert vqa_accuracy('two', gts) == pytest.approx(0.9)  # 3 x 2/3 + 7 x 1, over 10
    assert vqa_accuracy('3', gts) == 1.0
    assert vqa_accuracy('four', gts) == 0.0
    assert vqa_accuracy('cat', ['cat'] + ['dog'] * 9) == pytest.approx(0.3)  # 9 x 1/3 / 10
    assert vqa_accuracy('Yes.', ['yes'] * 10) == 1.0
    m = VQAv2Metric()
    m.process(None, [dict(question_id=1, pred_text='two', answers=gts, answer_type='number'),
                     dict(question_id=2, pred_text='Yes', answers=['yes'] * 10,
                          answer_type='yes/no')])
    out = m.evaluate(2)
    assert out['vqav2/accuracy'] == pytest.approx(95.0)
    assert out['vqav2/number'] == pytest.approx(90.0) and out['vqav2/yes/no'] == 100.0


def test_truthfulqa_mc1_mc2():
    assert mc1([-1.0, -2.0, -0.5], [1, 0, 0]) == 0.0
    assert mc1([-0.2, -1.0, -3.0], [1, 0, 0]) == 1.0
    assert mc2([math.log(.5), math.log(.3), math.log(.2)], [1, 1, 0]) == pytest.approx(0.8)
    m = TruthfulQAMetric()
    m.process(None, [
        dict(choice_logliks=[-1.0, -2.0, -0.5, math.log(.5), math.log(.3), math.log(.2)],
             mc1_index=[0, 1, 2], mc1_labels=[1, 0, 0], mc2_index=[3, 4, 5],
             mc2_labels=[1, 1, 0]),
        dict(choice_logliks=[-0.2, -1.0, -3.0, math.log(.1), math.log(.3)],
             mc1_index=[0, 1, 2], mc1_labels=[1, 0, 0], mc2_index=[3, 4], mc2_labels=[1, 0])])
    out = m.evaluate(2)
    assert out['truthfulqa/MC1'] == pytest.approx(50.0)
    assert out['truthfulqa/MC2'] == pytest.approx(52.5)  # (80 + 25) / 2


def test_mme_acc_and_acc_plus():
    assert parse_yes_no('Not really') == 'no' and parse_yes_no('maybe') == 'other'
    rows = [('existence', 'a.jpg', 'Yes', 'Yes'), ('existence', 'a.jpg', 'No', 'no'),
            ('existence', 'b.jpg', 'Yes', 'No, there is not'), ('existence', 'b.jpg', 'No', 'No'),
            ('code_reasoning', 'c.png', 'Yes', 'Yes, it is'), ('code_reasoning', 'c.png', 'No', 'maybe'),
            ('code_reasoning', 'd.png', 'No', 'No.'), ('code_reasoning', 'd.png', 'No', 'Not really')]
    m = MMEMetric()
    m.process(None, [dict(category=c, image=i, answer=a, pred_text=p) for c, i, a, p in rows])
    out = m.evaluate(len(rows))
    assert out['mme/existence/acc'] == 75.0 and out['mme/existence/acc+'] == 50.0
    assert out['mme/code_reasoning/acc'] == 75.0 and out['mme/code_reasoning/acc+'] == 50.0
    assert out['mme/perception'] == 125.0 and out['mme/cognition'] == 125.0

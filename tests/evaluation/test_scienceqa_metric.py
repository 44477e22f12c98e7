import json
import math

from mma.evaluation import ScienceQAMetric, parse_answer

# (subject, hint, has_image, grade, gold, prediction) -> hand-scored below
FIXTURE = [
    ('natural science', 'h', False, 'grade3', 0, 'The answer is A. BECAUSE: not The answer is B.'),
    ('natural science', '', True, 'grade8', 1, 'The answer is A. BECAUSE: x'),      # wrong
    ('natural science', 'h', True, 'grade5', 2, 'The answer is C.'),
    ('social science', '', False, 'grade2', 1, 'The answer is B. BECAUSE'),
    ('social science', '', True, 'grade10', 0, 'The answer is A.'),
    ('social science', 'h', False, 'grade7', 1, 'I think B'),                       # unparseable
    ('language science', '', False, 'grade4', 3, 'The answer is D.'),
    ('language science', 'h', False, 'grade12', 0, 'The answer is E.'),             # E of 4: unparseable
    ('language science', '', False, 'grade9', 0, 'The answer is B.'),               # wrong
    ('natural science', '', False, 'grade1', 1, 'The answer is B.'),
]


def samples():
    return [dict(qid=str(i), subject=s, has_hint=bool(h), has_image=img, grade=g,
                 answer_idx=a, choices=['w', 'x', 'y', 'z'], pred_text=p, num_generated=5 + i)
            for i, (s, h, img, g, a, p) in enumerate(FIXTURE)]


def test_parse_answer():
    assert parse_answer('The answer is B. BECAUSE', 3) == 1
    assert parse_answer('The answer is B', 3) == -1  # the reference pattern needs one more char
    assert parse_answer('The answer is D.', 3) == -1
    assert parse_answer('the answer is A.', 3) == -1


def test_scienceqa_metric_table_by_hand(tmp_path):
    out = tmp_path / 'preds.json'
    metric = ScienceQAMetric(prediction_file=str(out))
    metric.process(None, samples())
    m = metric.evaluate(len(FIXTURE))
    expect = {'Avg': 60.0, 'NAT': 75.0, 'SOC': 200 / 3, 'LAN': 100 / 3, 'TXT': 50.0,
              'IMG': 200 / 3, 'NO': 75.0, 'G1-6': 100.0, 'G7-12': 20.0}
    for k, v in expect.items():
        assert math.isclose(m[f'sqa/{k}'], v, rel_tol=1e-9), k
    assert m['sqa/unparseable'] == 2 and m['sqa/count'] == 10
    assert math.isclose(m['sqa/mean_generated'], 9.5)
    saved = json.loads(out.read_text())
    assert [p['qid'] for p in saved['predictions']] == [str(i) for i in range(10)]
    assert [p['pred'] for p in saved['predictions']] == [0, 0, 2, 1, 0, -1, 3, -1, 1, 1]

"""MME: yes/no accuracy and accuracy+ per subtask, perception and cognition totals."""
from collections import defaultdict
from typing import Dict, List, Sequence

from mmengine.logging import MMLogger

from mma.registry import METRICS

from .base import PredictionFileMetric

PERCEPTION = ('existence', 'count', 'position', 'color', 'posters', 'celebrity', 'scene',
              'landmark', 'artwork', 'OCR')
COGNITION = ('commonsense_reasoning', 'numerical_calculation', 'text_translation',
             'code_reasoning')


def parse_yes_no(text: str) -> str:
    """MME's ``parse_pred_ans``: exact yes/no, else yes/no within the first 4 characters,
    else ``other`` (always wrong)."""
    text = text.strip().lower()
    if text in ('yes', 'no'):
        return text
    head = text[:4]
    return 'yes' if 'yes' in head else 'no' if 'no' in head else 'other'


def mme_scores(results: List[dict]) -> Dict[str, float]:
    """Per subtask ``acc`` and ``acc+`` (%), score = acc + acc+; totals as the leaderboard.

    acc+ counts an image as right only when both of its questions are answered right.
    """
    by_task = defaultdict(list)
    for r in results:
        by_task[r['category']].append(r)
    out: Dict[str, float] = {}
    for task, rows in by_task.items():
        acc = 100.0 * sum(r['correct'] for r in rows) / len(rows)
        per_image = defaultdict(list)
        for r in rows:
            per_image[r['image']].append(r['correct'])
        acc_plus = 100.0 * sum(all(v) for v in per_image.values()) / len(per_image)
        out.update({f'{task}/acc': acc, f'{task}/acc+': acc_plus, f'{task}/score': acc + acc_plus})
    out['perception'] = sum(out.get(f'{t}/score', 0.0) for t in PERCEPTION)
    out['cognition'] = sum(out.get(f'{t}/score', 0.0) for t in COGNITION)
    return out


@METRICS.register_module()
class MMEMetric(PredictionFileMetric):
    """MME (the 14 subtasks; perception max 2000, cognition max 800).

    Data samples carry ``category`` (subtask), ``image`` (file name; its two questions form a
    pair), ``answer`` (``Yes``/``No``) and the prediction ``pred_text``.

    Args:
        prediction_file: Where to write the per-question predictions (JSON), if given.
    """
    default_prefix = 'mme'

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for s in data_samples:
            pred = parse_yes_no(s['pred_text'])
            self.results.append(dict(category=s['category'], image=s['image'],
                                     question=s.get('question'), pred_text=s['pred_text'],
                                     pred=pred, correct=pred == s['answer'].strip().lower()))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        metrics = mme_scores(results)
        self.write_predictions(results, indent=1)
        MMLogger.get_current_instance().info(f'MME: perception {metrics["perception"]:.2f}, '
                                             f'cognition {metrics["cognition"]:.2f}')
        return metrics

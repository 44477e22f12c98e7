"""ScienceQA accuracy with the official breakdown (subject, context, grade)."""
import re
from typing import Dict, List, Optional, Sequence

from mmengine.logging import MMLogger

from mma.registry import METRICS

from .base import PredictionFileMetric

#: The reference answer pattern; ``.`` matches any character, as in the reference.
ANSWER_RE = re.compile(r'The answer is ([A-Z]).')

SUBJECTS = {'natural science': 'NAT', 'social science': 'SOC', 'language science': 'LAN'}
COLUMNS = ('Avg', 'NAT', 'SOC', 'LAN', 'TXT', 'IMG', 'NO', 'G1-6', 'G7-12')


def parse_answer(text: str, num_choices: int) -> int:
    """Index of the chosen option, or -1 when unparseable.

    The first ``The answer is X.`` decides (the reference requires exactly one match and scores
    anything else with ``random.choice``). A letter beyond the options is unparseable too.
    """
    m = ANSWER_RE.search(text)
    if m is None:
        return -1
    idx = ord(m.group(1)) - ord('A')
    return idx if idx < num_choices else -1


def buckets(sample: dict) -> List[str]:
    """The table columns a question counts in (TXT and IMG overlap, as the official script)."""
    has_text, has_image = bool(sample['has_hint']), bool(sample['has_image'])
    cols = ['Avg']
    if sample.get('subject') in SUBJECTS:
        cols.append(SUBJECTS[sample['subject']])
    cols += ['TXT'] * has_text + ['IMG'] * has_image + ['NO'] * (not has_text and not has_image)
    grade = int(str(sample.get('grade', 'grade0')).replace('grade', '') or 0)
    if 1 <= grade <= 6:
        cols.append('G1-6')
    elif 7 <= grade <= 12:
        cols.append('G7-12')
    return cols


@METRICS.register_module()
class ScienceQAMetric(PredictionFileMetric):
    """Accuracy (%) overall and per NAT/SOC/LAN, TXT/IMG/NO, G1-6/G7-12.

    Each data sample returned by the model carries the fields of a
    :class:`~mma.datasets.ScienceQADataset` sample (``qid``, ``answer_idx``: the gold index,
    ``choices``, ``subject``, ``grade``, ``has_hint``: TXT) plus ``has_image`` and the prediction
    ``pred_text``. Unparseable predictions are scored **wrong** (deterministic) and
    counted in ``unparseable``. ``mean_generated`` is the mean number of decoded tokens.

    Args:
        prediction_file: Where to write the per-question predictions (JSON), if given.
    """
    default_prefix = 'sqa'

    @staticmethod
    def format_results(metrics: Dict[str, float]) -> Optional[str]:
        """The table ``tools/test.py`` prints (``metrics`` without the ``sqa/`` prefix)."""
        return format_table(metrics) if all(c in metrics for c in COLUMNS) else None

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for s in data_samples:
            choices = list(s.get('choices', []))
            pred = parse_answer(s['pred_text'], len(choices))
            gold = int(s['answer_idx'])
            self.results.append(dict(
                qid=s.get('qid'), pred_text=s['pred_text'], pred=pred, answer=gold,
                correct=pred == gold, buckets=buckets(s),
                num_generated=int(s.get('num_generated', 0))))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        metrics = scienceqa_table(results)
        self.write_predictions(dict(metrics=metrics, predictions=results), indent=1)
        MMLogger.get_current_instance().info('ScienceQA\n' + format_table(metrics))
        return metrics


def scienceqa_table(results: List[dict]) -> Dict[str, float]:
    """Accuracies (%) per column (NaN for an empty column) + counts."""
    out: Dict[str, float] = {}
    for col in COLUMNS:
        rows = [r for r in results if col in r['buckets']]
        out[col] = 100.0 * sum(r['correct'] for r in rows) / len(rows) if rows else float('nan')
    out['unparseable'] = sum(r['pred'] < 0 for r in results)
    out['count'] = len(results)
    out['mean_generated'] = (sum(r['num_generated'] for r in results) / len(results)
                             if results else 0.0)
    return out


def format_table(metrics: Dict[str, float]) -> str:
    head = ' | '.join(f'{c:>6}' for c in COLUMNS)
    vals = ' | '.join(f'{metrics[c]:6.2f}' for c in COLUMNS)
    return (f'{head}\n{vals}\nquestions: {metrics["count"]}, unparseable (scored wrong): '
            f'{metrics["unparseable"]}')

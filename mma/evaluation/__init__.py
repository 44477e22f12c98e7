"""Evaluation metrics (one per file), registered in :data:`mma.registry.METRICS`."""
from .caption_metric import COCOCaptionMetric, bleu, cider_d, ptb_tokenize
from .mme_metric import MMEMetric, mme_scores, parse_yes_no
from .multiple_choice_metric import TruthfulQAMetric, mc1, mc2
from .scienceqa_metric import ScienceQAMetric, parse_answer, scienceqa_table
from .vqa_metric import VQAv2Metric, normalize_answer, vqa_accuracy

__all__ = [
    'COCOCaptionMetric', 'MMEMetric', 'ScienceQAMetric', 'TruthfulQAMetric', 'VQAv2Metric',
    'bleu', 'cider_d', 'ptb_tokenize', 'mme_scores', 'parse_yes_no', 'mc1', 'mc2',
    'parse_answer', 'scienceqa_table', 'normalize_answer', 'vqa_accuracy'
]

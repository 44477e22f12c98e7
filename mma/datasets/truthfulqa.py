"""TruthfulQA multiple choice (``mc_task.json`` of the TruthfulQA repository)."""
from typing import List

from mma.fileio import read_json
from mma.registry import DATASETS

from .instruction import instruction
from .prompt_dataset import PromptDataset


def _targets(t) -> tuple:
    """``{choice: label}`` (repository) or ``{'choices': [...], 'labels': [...]}`` (HF)."""
    if 'choices' in t and 'labels' in t:
        return list(t['choices']), [int(x) for x in t['labels']]
    return list(t), [int(x) for x in t.values()]


@DATASETS.register_module()
class TruthfulQADataset(PromptDataset):
    """One item per question; its choices are the union of the MC1 and MC2 target sets, scored by
    log-likelihood after ``Instruction: {question}\\nResponse:`` (zero-shot, text only).

    Args:
        ann_file: ``mc_task.json`` (a list of ``question``, ``mc1_targets``, ``mc2_targets``).
        **kwargs: :class:`PromptDataset` arguments.
    """

    PREDICTION = 'score_choices'

    def __init__(self, data_root: str, tokenizer=None, ann_file: str = 'mc_task.json', **kwargs):
        self.ann_file = ann_file
        super().__init__(data_root, tokenizer, **kwargs)

    def load_records(self) -> List[dict]:
        rows = read_json(self.path(self.ann_file), 'the TruthfulQA annotation file')
        records = []
        for r in rows:
            c1, l1 = _targets(r['mc1_targets'])
            c2, l2 = _targets(r['mc2_targets'])
            choices = list(dict.fromkeys(c1 + c2))
            records.append(dict(
                prompt=instruction(r['question']), img_path=None, choices=choices,
                data_sample=dict(question=r['question'], mc1_index=[choices.index(c) for c in c1],
                                 mc1_labels=l1, mc2_index=[choices.index(c) for c in c2],
                                 mc2_labels=l2)))
        return records

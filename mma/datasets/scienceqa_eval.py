"""ScienceQA for evaluation: the QCM prompt of the reference, the metadata of the official
breakdown. (Training data and the other prompt formats belong to the training datasets.)"""
import json
from typing import List

from mma.registry import DATASETS

from .prompt_dataset import PromptDataset


def qcm_prompt(problem: dict, use_caption: bool = False, caption: str = '') -> str:
    """``Question: ...\\nContext: ...\\nOptions: (A) ... (B) ...\\nResponse:`` (reference doc §5)."""
    context = problem.get('hint') or ''
    if use_caption and caption:
        context = ' '.join([context, caption]).strip()
    options = ' '.join(f'({chr(65 + i)}) {c}' for i, c in enumerate(problem['choices']))
    return (f"Question: {problem['question']}\nContext: {context or 'N/A'}\n"
            f'Options: {options}\nResponse:')


@DATASETS.register_module()
class ScienceQAEvalDataset(PromptDataset):
    """ScienceQA questions of one split: ``problems.json``, ``pid_splits.json``,
    ``images/{split}/{qid}/image.png``, optional ``captions.json``.

    Args:
        split: ``'test'``, ``'val'``, ``'minival'``, ...
        use_caption: Append the caption to the context.
        **kwargs: :class:`PromptDataset` arguments.
    """

    def __init__(self, data_root: str, tokenizer, split: str = 'test', use_caption: bool = False,
                 **kwargs):
        self.split, self.use_caption = split, use_caption
        super().__init__(data_root, tokenizer, **kwargs)

    def load_records(self) -> List[dict]:
        with open(self.path('problems.json')) as f:
            problems = json.load(f)
        with open(self.path('pid_splits.json')) as f:
            qids = json.load(f)[self.split]
        captions = {}
        if self.use_caption:
            with open(self.path('captions.json')) as f:
                captions = json.load(f)['captions']
        records = []
        for qid in qids:
            p = problems[qid]
            image = self.path('images', self.split, qid, p['image']) if p.get('image') else None
            records.append(dict(
                prompt=qcm_prompt(p, self.use_caption, captions.get(qid, '')), image=image,
                data_sample=dict(qid=qid, answer=int(p['answer']), choices=list(p['choices']),
                                 subject=p['subject'], grade=p['grade'],
                                 has_context=bool(p.get('hint')))))
        return records

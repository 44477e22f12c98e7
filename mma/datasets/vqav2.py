"""VQAv2 (official question and annotation JSON files, COCO 2014 images)."""
import os
from collections import Counter
from typing import List, Optional

from mma.fileio import read_json
from mma.registry import DATASETS

from .instruction import instruction
from .prompt_dataset import PromptDataset

SHORT_ANSWER = 'Answer the question using a single word or phrase.'


@DATASETS.register_module()
class VQAv2Dataset(PromptDataset):
    """``v2_OpenEnded_mscoco_{split}2014_questions.json`` (+ ``v2_mscoco_{split}2014_annotations
    .json`` when present), images ``{split}2014/COCO_{split}2014_{image_id:012d}.jpg``.

    The training target is the most frequent human answer (``multiple_choice_answer``).

    Args:
        split: ``'train'``, ``'val'`` or ``'test'`` (test-dev / test have no annotations:
            ``question_file`` names the file, e.g. ``v2_OpenEnded_mscoco_test-dev2015_questions
            .json``, and ``image_dir`` ``test2015``).
        question_file, annotation_file, image_dir: Override the default names.
        **kwargs: :class:`PromptDataset` arguments.
    """

    def __init__(self, data_root: str, tokenizer=None, split: str = 'val',
                 question_file: Optional[str] = None, annotation_file: Optional[str] = None,
                 image_dir: Optional[str] = None, **kwargs):
        self.split = split
        self.question_file = question_file or f'v2_OpenEnded_mscoco_{split}2014_questions.json'
        self.annotation_file = annotation_file or f'v2_mscoco_{split}2014_annotations.json'
        self.image_dir = image_dir or f'{split}2014'
        super().__init__(data_root, tokenizer, **kwargs)

    def load_records(self) -> List[dict]:
        questions = read_json(self.path(self.question_file), 'the VQAv2 question file')['questions']
        anns = {}
        if os.path.isfile(self.path(self.annotation_file)):
            anns = {a['question_id']: a for a in read_json(
                self.path(self.annotation_file), 'the VQAv2 annotation file')['annotations']}
        prefix = os.path.basename(self.image_dir.rstrip('/'))
        records = []
        for q in questions:
            a = anns.get(q['question_id'], {})
            answers = [x['answer'] for x in a.get('answers', [])]
            target = a.get('multiple_choice_answer') or (
                Counter(answers).most_common(1)[0][0] if answers else None)
            records.append(dict(
                prompt=instruction(f"{q['question']} {SHORT_ANSWER}"), answer=target,
                img_path=self.path(self.image_dir, f"COCO_{prefix}_{q['image_id']:012d}.jpg"),
                data_sample=dict(question_id=q['question_id'], question=q['question'],
                                 answers=answers, answer_type=a.get('answer_type'))))
        return records

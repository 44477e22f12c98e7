"""MME (``MME_Benchmark_release_version``): 14 subtasks of paired yes/no questions."""
import glob
import os
from typing import List, Optional, Sequence

from mma.registry import DATASETS

from .instruction import instruction
from .prompt_dataset import PromptDataset

IMAGE_EXTS = ('.jpg', '.png', '.jpeg')


@DATASETS.register_module()
class MMEDataset(PromptDataset):
    """Each subtask folder holds either ``images/*`` + ``questions_answers_YN/*.txt`` (artwork,
    celebrity, landmark, posters, scene) or the images and ``*.txt`` side by side; a text file
    has one ``question<TAB>answer`` line per question (two per image).

    Args:
        categories: Subtasks to load (default: every folder of ``data_root``).
        **kwargs: :class:`PromptDataset` arguments.
    """

    def __init__(self, data_root: str, tokenizer=None, categories: Optional[Sequence[str]] = None,
                 **kwargs):
        self.categories = categories
        super().__init__(data_root, tokenizer, **kwargs)

    def load_records(self) -> List[dict]:
        cats = self.categories or sorted(
            d for d in os.listdir(self.data_root) if os.path.isdir(self.path(d)))
        records = []
        for cat in cats:
            root = self.path(cat)
            if os.path.isdir(os.path.join(root, 'questions_answers_YN')):
                qa_dir, img_dir = os.path.join(root, 'questions_answers_YN'), os.path.join(root, 'images')
            else:
                qa_dir = img_dir = root
            for txt in sorted(glob.glob(os.path.join(qa_dir, '*.txt'))):
                stem = os.path.splitext(os.path.basename(txt))[0]
                image = next((os.path.join(img_dir, stem + e) for e in IMAGE_EXTS
                              if os.path.isfile(os.path.join(img_dir, stem + e))), None)
                if image is None:
                    raise FileNotFoundError(f'MME: no image for {txt} in {img_dir}')
                with open(txt, encoding='utf-8') as f:
                    for line in f:
                        if not line.strip():
                            continue
                        question, answer = line.rstrip('\n').split('\t')[:2]
                        records.append(dict(
                            prompt=instruction(question.strip()), img_path=image,
                            data_sample=dict(category=cat, image=os.path.basename(image),
                                             question=question.strip(), answer=answer.strip())))
        return records

"""ScienceQA in its official layout."""
import json
import os.path as osp
from typing import List, Optional, Sequence

from mma.registry import DATASETS

from .base import LaVINDataset
from .prompts import DEFAULT_OPTIONS, build_prompt, parse_format


@DATASETS.register_module()
class ScienceQADataset(LaVINDataset):
    """ScienceQA (Lu et al., 2022) from its official files.

    Layout under ``data_root``::

        problems.json        {qid: {question, choices, answer, hint, image, subject, grade,
                                    lecture, solution, split, ...}}
        pid_splits.json      {split: [qid, ...]}  (train / val / test / trainval / minival / ...)
        captions.json        {"captions": {qid: text}}  (optional; only with use_caption)
        images/{split}/{qid}/image.png

    Args:
        data_root: The folder above.
        split: Any key of ``pid_splits.json``.
        prompt_format: e.g. ``'QCM-ALE'`` (see :mod:`mma.datasets.prompts`).
        options: Option letters.
        use_caption: Append the caption to the context.
        image_split: Folder under ``images/`` holding this split's images; default: the problem's
            own ``split`` field (so ``trainval`` finds both ``train`` and ``val`` images).
        pipeline, test_mode, lazy_init, indices: As mmengine's ``BaseDataset``.
    """

    METAINFO = dict(name='ScienceQA')

    def __init__(self, data_root: str, split: str = 'train', prompt_format: str = 'QCM-ALE',
                 options: Sequence[str] = DEFAULT_OPTIONS, use_caption: bool = False,
                 problems_file: str = 'problems.json', splits_file: str = 'pid_splits.json',
                 captions_file: str = 'captions.json', image_dir: str = 'images',
                 image_split: Optional[str] = None, **kwargs):
        parse_format(prompt_format)
        self.split, self.prompt_format = split, prompt_format
        self.options = tuple(options)
        self.use_caption = use_caption
        self.problems_file, self.splits_file = problems_file, splits_file
        self.captions_file, self.image_dir, self.image_split = captions_file, image_dir, image_split
        super().__init__(data_root=data_root, **kwargs)

    def _path(self, name: str) -> str:
        return osp.join(self.data_root, name)

    def load_data_list(self) -> List[dict]:
        with open(self._path(self.problems_file)) as f:
            problems = json.load(f)
        with open(self._path(self.splits_file)) as f:
            splits = json.load(f)
        if self.split not in splits:
            raise KeyError(f'split {self.split!r} not in {self._path(self.splits_file)}; '
                           f'has {sorted(splits)}')
        captions = {}
        if self.use_caption:
            with open(self._path(self.captions_file)) as f:
                captions = json.load(f)['captions']
        data_list = []
        for qid in splits[self.split]:
            qid = str(qid)
            p = problems[qid]
            prompt, answer = build_prompt(p, self.prompt_format, self.options,
                                          captions.get(qid) if self.use_caption else None)
            img_path = None
            if p.get('image'):
                folder = self.image_split or p.get('split', self.split)
                img_path = osp.join(self.data_root, self.image_dir, folder, qid, p['image'])
            data_list.append(dict(
                qid=qid, prompt=prompt, answer=answer, img_path=img_path,
                answer_idx=int(p['answer']), choices=list(p['choices']),
                options=list(self.options[:len(p['choices'])]), subject=p.get('subject'),
                grade=p.get('grade'), has_hint=bool(p.get('hint'))))
        return data_list

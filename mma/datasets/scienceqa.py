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
        try:
            parse_format(prompt_format)
        except ValueError as err:
            raise ValueError(f'ScienceQADataset(prompt_format=...): {err}') from None
        self.split, self.prompt_format = split, prompt_format
        self.options = tuple(options)
        self.use_caption = use_caption
        self.problems_file, self.splits_file = problems_file, splits_file
        self.captions_file, self.image_dir, self.image_split = captions_file, image_dir, image_split
        super().__init__(data_root=data_root, **kwargs)

    def _path(self, name: str) -> str:
        return osp.join(self.data_root, name)

    def _load_json(self, name: str, what: str):
        path = self._path(name)
        if not osp.isdir(self.data_root):
            raise FileNotFoundError(f'ScienceQA data_root {self.data_root!r} does not exist; '
                                    'expected a folder with problems.json, pid_splits.json and '
                                    'images/{split}/{qid}/ (set train_dataloader.dataset.'
                                    'data_root / test_dataloader.dataset.data_root)')
        if not osp.isfile(path):
            raise FileNotFoundError(f'ScienceQA {what} not found: {path} (expected in data_root '
                                    f'{self.data_root})')
        with open(path) as f:
            try:
                return json.load(f)
            except json.JSONDecodeError as err:
                raise ValueError(f'{path} is not valid JSON: {err}') from None

    def _check_problem(self, qid: str, p: dict) -> None:
        where = f'{self._path(self.problems_file)}: problem {qid}'
        if not str(p.get('question') or '').strip():
            raise ValueError(f'{where} has an empty question')
        choices = p.get('choices') or []
        if not choices or any(not str(c).strip() for c in choices):
            raise ValueError(f'{where} has an empty choice list or an empty choice: {choices!r}')
        answer = p.get('answer')
        if not isinstance(answer, int) or not 0 <= answer < len(choices):
            raise ValueError(f'{where}: answer {answer!r} is not the index of one of its '
                             f'{len(choices)} choices')

    def load_data_list(self) -> List[dict]:
        problems = self._load_json(self.problems_file, 'problems file')
        splits = self._load_json(self.splits_file, 'splits file')
        if self.split not in splits:
            raise KeyError(f'split {self.split!r} not in {self._path(self.splits_file)}; '
                           f'has {sorted(splits)}')
        captions = {}
        if self.use_caption:
            captions = self._load_json(self.captions_file, 'captions file')['captions']
        absent = [str(q) for q in splits[self.split] if str(q) not in problems]
        if absent:
            raise KeyError(f'{len(absent)} qids of split {self.split!r} in '
                           f'{self._path(self.splits_file)} are not in '
                           f'{self._path(self.problems_file)}: {absent[:10]}')
        data_list = []
        for qid in splits[self.split]:
            qid = str(qid)
            p = problems[qid]
            self._check_problem(qid, p)
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

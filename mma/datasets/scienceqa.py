"""ScienceQA in its official layout."""
import os.path as osp
from collections import Counter
from typing import List, Optional, Sequence

from mma.errors import MMAKeyError, MMAUserError
from mma.fileio import read_json
from mma.registry import DATASETS

from .base import LaVINDataset
from .prompts import DEFAULT_OPTIONS, build_prompt, parse_format
from .record_errors import RecordErrors


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
            raise MMAUserError(f'ScienceQADataset(prompt_format=...): {err}') from None
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
        return read_json(path, f'the ScienceQA {what}')

    def _check_problem(self, qid: str, p: dict) -> None:
        """Types and values a wrong file would otherwise train on silently: a string ``choices``
        (its characters as options), ``answer: true`` (index 1)."""
        where = f'{self._path(self.problems_file)}: problem {qid}'
        if not str(p.get('question') or '').strip():
            raise MMAUserError(f'{where} has an empty question')
        choices = p.get('choices')
        if not isinstance(choices, list):
            raise MMAUserError(f'{where}: field "choices" must be a list of strings, got '
                               f'{type(choices).__name__} {choices!r}')
        if not choices or any(not isinstance(c, str) or not c.strip() for c in choices):
            raise MMAUserError(f'{where} has an empty choice list or an empty or non-string '
                               f'choice in field "choices": {choices!r}')
        answer = p.get('answer')
        if isinstance(answer, bool) or not isinstance(answer, int) or not \
                0 <= answer < len(choices):
            raise MMAUserError(f'{where}: answer {answer!r} is not the index of one of its '
                               f'{len(choices)} choices (field "answer" must be an int in 0..'
                               f'{len(choices) - 1}, got {type(answer).__name__})')

    def _split_qids(self, splits: dict) -> List[str]:
        """The split's qids; an empty split or a qid listed twice is an error (one policy for
        every split: a repeated qid would train twice without a word)."""
        where = f'split {self.split!r} of {self._path(self.splits_file)}'
        if self.split not in splits:
            raise MMAKeyError(f'split {self.split!r} not in {self._path(self.splits_file)}; '
                              f'has {sorted(splits)}')
        qids = [str(q) for q in splits[self.split] or []]
        if not qids:
            raise MMAUserError(f'{where} lists no qids: nothing to train or evaluate on; fill it '
                               'or choose another split (ScienceQADataset(split=...))')
        repeated = sorted((q for q, n in Counter(qids).items() if n > 1), key=qids.index)
        if repeated:
            raise MMAUserError(f'{where} lists {len(repeated)} qids more than once (they would '
                               f'be used more than once per epoch): {repeated[:10]}; remove the '
                               'repeats')
        return qids

    def _record(self, qid: str, p: dict, captions: dict) -> dict:
        """One problem as a sample (after :meth:`_check_problem`)."""
        self._check_problem(qid, p)
        prompt, answer = build_prompt(p, self.prompt_format, self.options,
                                      captions.get(qid) if self.use_caption else None)
        img_path = None
        if p.get('image'):
            folder = self.image_split or p.get('split', self.split)
            img_path = osp.join(self.data_root, self.image_dir, folder, qid, p['image'])
        return dict(qid=qid, prompt=prompt, answer=answer, img_path=img_path,
                    answer_idx=int(p['answer']), choices=list(p['choices']),
                    options=list(self.options[:len(p['choices'])]), subject=p.get('subject'),
                    grade=p.get('grade'), has_hint=bool(p.get('hint')))

    def load_data_list(self) -> List[dict]:
        problems = self._load_json(self.problems_file, 'problems file')
        split_qids = self._split_qids(self._load_json(self.splits_file, 'splits file'))
        captions = {}
        if self.use_caption:
            captions = self._load_json(self.captions_file, 'captions file')['captions']
        absent = [q for q in split_qids if q not in problems]
        if absent:
            raise MMAKeyError(f'{len(absent)} qids of split {self.split!r} in '
                           f'{self._path(self.splits_file)} are not in '
                           f'{self._path(self.problems_file)}: {absent[:10]}')
        data_list = []
        bad = RecordErrors(self._path(self.problems_file))
        for qid in split_qids:  # every record checked: all bad ones are reported at once
            with bad.record(f'problem {qid}'):
                data_list.append(self._record(qid, problems[qid], captions))
        bad.raise_if_any(len(split_qids))
        return data_list

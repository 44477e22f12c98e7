"""A base for benchmark datasets (COCO captions, VQAv2, TruthfulQA, MME): records read from the
benchmark's own files, turned into samples by the training pipeline's transforms
(:class:`~mma.datasets.LoadLaVINImage`, :class:`~mma.datasets.TokenizeForLaVIN`) and batched by
:func:`~mma.datasets.mma_collate`."""
import os
from typing import List, Optional, Union

from torch.utils.data import Dataset

from mma.errors import MMAUserError

from .transforms import LoadLaVINImage, TokenizeForLaVIN


class PromptDataset(Dataset):
    """Subclasses implement :meth:`load_records`: dicts with ``prompt``, ``img_path`` (path or
    None), optionally ``answer`` (training target) and ``choices`` (continuations scored by
    log-likelihood), and ``data_sample`` (metadata for the metric).

    What it takes from the model (``FROM_MODEL``: tokenizer, image size, visual tokens) is filled
    in by mma's Runner when a config leaves it unset (:mod:`mma.datasets.follow`), as for the
    transforms of a ``pipeline``; a count set by hand must be the model's.

    Args:
        data_root: Folder of the benchmark files.
        tokenizer: Tokenizer config (``TOKENIZERS``), object, or a ``tokenizer.model`` /
            ``tokenizer.json`` path (or the weights folder holding one). None: the model's.
        image_size: Side of the square input image. None: the vision encoder's.
        with_answer: Append the answer and EOS and emit labels (training).
        max_samples: Keep only the first N records (quick runs).
        max_len: Positions limit passed to :class:`TokenizeForLaVIN` (None: no limit).
        num_visual_tokens: Visual tokens per image (for ``max_len``). None: the model's.
    """

    FROM_MODEL = dict(tokenizer='tokenizer', image_size='image_size',
                      num_visual_tokens='num_visual_tokens')
    #: How the model predicts a sample (:meth:`mma.models.LaVIN.predict`): ``'generate'`` or
    #: ``'score_choices'`` (log-likelihood of each of the record's ``choices``).
    PREDICTION = 'generate'

    def __init__(self, data_root: str, tokenizer: Union[dict, str, object, None] = None,
                 image_size: Optional[int] = None, with_answer: bool = False,
                 max_samples: Optional[int] = None, max_len: Optional[int] = None,
                 num_visual_tokens: Optional[int] = None):
        self.data_root = data_root
        if isinstance(tokenizer, str):
            tokenizer = dict(type='AutoTokenizer', path=tokenizer)
        self.with_answer = with_answer
        self.image_size = image_size
        self.load_image = LoadLaVINImage(size=image_size) if image_size is not None else None
        self.tokenize = TokenizeForLaVIN(tokenizer, max_len=max_len,
                                         num_visual_tokens=num_visual_tokens,
                                         with_answer=with_answer, meta_keys=())
        self.tokenizer = self.tokenize.tokenizer
        self.records: List[dict] = self.load_records()
        if max_samples is not None:
            self.records = self.records[:max_samples]

    def load_records(self) -> List[dict]:
        raise NotImplementedError

    def path(self, *parts: str) -> str:
        return os.path.join(self.data_root, *parts)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, idx: int) -> dict:
        r = self.records[idx]
        results = dict(r, qid=idx)
        if r.get('img_path') is not None:
            if self.load_image is None:
                raise MMAUserError(f'{type(self).__name__}: image_size is not set: build the '
                                   "dataset through mma's Runner (tools/test.py), which takes "
                                   "the vision encoder's, or set image_size")
            results = self.load_image(results)
        sample = self.tokenize(results)
        sample['data_samples'].update(r['data_sample'], index=idx)
        if r.get('choices') is not None:
            sample['inputs']['choice_ids'] = [self.tokenize.encode_piece(c) for c in r['choices']]
        if self.PREDICTION != 'generate':
            sample['inputs']['prediction'] = self.PREDICTION
        return sample

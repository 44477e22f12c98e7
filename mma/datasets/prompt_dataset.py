"""A base for benchmark datasets (COCO captions, VQAv2, TruthfulQA, MME): records read from the
benchmark's own files, turned into samples by the training pipeline's transforms
(:class:`~mma.datasets.LoadLaVINImage`, :class:`~mma.datasets.TokenizeForLaVIN`) and batched by
:func:`~mma.datasets.mma_collate`."""
import os
from typing import List, Optional, Union

from torch.utils.data import Dataset

from .transforms import LoadLaVINImage, TokenizeForLaVIN


class PromptDataset(Dataset):
    """Subclasses implement :meth:`load_records`: dicts with ``prompt``, ``img_path`` (path or
    None), optionally ``answer`` (training target) and ``choices`` (continuations scored by
    log-likelihood), and ``data_sample`` (metadata for the metric).

    Args:
        data_root: Folder of the benchmark files.
        tokenizer: Tokenizer config (``TOKENIZERS``), object, or a ``tokenizer.model`` /
            ``tokenizer.json`` path (or the weights folder holding one).
        image_size: Side of the square input image.
        with_answer: Append the answer and EOS and emit labels (training).
        max_samples: Keep only the first N records (quick runs).
        max_len: Positions limit passed to :class:`TokenizeForLaVIN` (None: no limit).
        num_visual_tokens: Visual tokens per image (for ``max_len``).
    """

    def __init__(self, data_root: str, tokenizer: Union[dict, str, object], image_size: int = 224,
                 with_answer: bool = False, max_samples: Optional[int] = None,
                 max_len: Optional[int] = None, num_visual_tokens: int = 6):
        self.data_root = data_root
        if isinstance(tokenizer, str):
            tokenizer = dict(type='AutoTokenizer', path=tokenizer)
        self.with_answer = with_answer
        self.load_image = LoadLaVINImage(size=image_size)
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
        sample = self.tokenize(self.load_image(dict(r, qid=idx)))
        sample['data_samples'].update(r['data_sample'], index=idx)
        if r.get('choices') is not None:
            sample['inputs']['choice_ids'] = [self.tokenize.encode_piece(c) for c in r['choices']]
        return sample

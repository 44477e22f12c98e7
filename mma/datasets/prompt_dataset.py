"""A base for prompt datasets: items tokenised per the LaVIN data contract, images loaded."""
import os
from typing import List, Optional, Sequence, Union

import torch
from torch.utils.data import Dataset

from mma.registry import TOKENIZERS

from .eval_collate import encode_prompt

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the reference normalises with ImageNet statistics
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_image(path: str, size: int, mean: Sequence[float] = IMAGENET_MEAN,
               std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """RGB image -> (3, size, size): bicubic resize, then normalise."""
    import torchvision.transforms.functional as TF
    from PIL import Image
    if not os.path.isfile(path):
        raise FileNotFoundError(f'image not found: {path}')
    with Image.open(path) as img:
        img = img.convert('RGB').resize((size, size), Image.BICUBIC)
        return TF.normalize(TF.to_tensor(img), mean, std)


class PromptDataset(Dataset):
    """Subclasses implement :meth:`load_records`: dicts with ``prompt``, ``image`` (path or None),
    optionally ``answer`` (training target) and ``choices`` (scored continuations), and
    ``data_sample`` (metadata for the metric).

    Args:
        data_root: Folder of the benchmark files.
        tokenizer: Tokenizer config (``TOKENIZERS``), object, or ``tokenizer.model`` path.
        image_size: Side of the square input image.
        with_answer: Append the answer and EOS and emit labels (training).
        max_samples: Keep only the first N records (quick runs).
    """

    def __init__(self, data_root: str, tokenizer: Union[dict, str, object], image_size: int = 224,
                 with_answer: bool = False, max_samples: Optional[int] = None):
        self.data_root = data_root
        if isinstance(tokenizer, str):
            tokenizer = dict(type='SentencePieceTokenizer', model_path=tokenizer)
        self.tokenizer = TOKENIZERS.build(tokenizer) if isinstance(tokenizer, dict) else tokenizer
        self.image_size = image_size
        self.with_answer = with_answer
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
        has_image = r.get('image') is not None
        ids, vpos, labels = encode_prompt(self.tokenizer, r['prompt'], has_image,
                                          r.get('answer') if self.with_answer else None)
        item = dict(input_ids=ids, labels=labels, visual_pos=vpos, has_image=has_image,
                    image=load_image(r['image'], self.image_size) if has_image else None,
                    data_sample=dict(r['data_sample'], has_image=has_image, index=idx))
        if r.get('choices') is not None:
            item['choice_ids'] = [self.tokenizer.encode(c) for c in r['choices']]
        return item


def instruction(text: str) -> str:
    """The chatbot recipe's template."""
    return f'Instruction: {text}\nResponse:'

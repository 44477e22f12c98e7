"""COCO captions, Karpathy split (``dataset_coco.json``)."""
from typing import List

from mma.fileio import read_json
from mma.registry import DATASETS

from .instruction import instruction
from .prompt_dataset import PromptDataset

CAPTION_PROMPT = instruction('Generate a short caption of the image.')


@DATASETS.register_module()
class COCOCaptionDataset(PromptDataset):
    """Karpathy's ``dataset_coco.json`` (``images[].filepath/filename/split/sentences[].raw/
    cocoid``) with images under ``data_root/{filepath}/{filename}``.

    Evaluation yields one item per image (all its captions are the references); training
    (``with_answer=True``) one item per caption.

    Args:
        split: ``'train'`` (Karpathy train + restval), ``'val'`` or ``'test'``.
        ann_file: Name of the annotation file in ``data_root``.
        **kwargs: :class:`PromptDataset` arguments.
    """

    def __init__(self, data_root: str, tokenizer=None, split: str = 'test',
                 ann_file: str = 'dataset_coco.json', **kwargs):
        self.split, self.ann_file = split, ann_file
        super().__init__(data_root, tokenizer, **kwargs)

    def load_records(self) -> List[dict]:
        images = read_json(self.path(self.ann_file), 'the COCO caption annotation file')['images']
        splits = ('train', 'restval') if self.split == 'train' else (self.split,)
        records = []
        for im in images:
            if im['split'] not in splits:
                continue
            caps = [s['raw'].strip() for s in im['sentences']]
            base = dict(prompt=CAPTION_PROMPT, img_path=self.path(im['filepath'], im['filename']),
                        data_sample=dict(image_id=im.get('cocoid', im.get('imgid')),
                                         captions=caps))
            if self.with_answer:
                records += [dict(base, answer=c) for c in caps]
            else:
                records.append(base)
        return records

"""Instruction-tuning data: LaVIN's ``all_data.json``, LLaVA-Instruct conversations, Alpaca.

Every sample is ``Instruction: {q}\\nResponse:`` -> answer (the LaVIN chatbot recipe of the
paper and its code); the template is a
parameter. Mix several in one config with mmengine's ``ConcatDataset``::

    train_dataloader = dict(dataset=dict(type='ConcatDataset', datasets=[
        dict(type='AlpacaDataset', ann_file=..., pipeline=...),
        dict(type='LLaVAInstructDataset', ann_file=..., image_root=..., pipeline=...)]))
"""
import os.path as osp
from typing import List, Optional

from mma.errors import MMAUserError
from mma.fileio import read_json
from mma.registry import DATASETS

from .base import LaVINDataset
from .record_errors import RecordErrors

INSTRUCTION_TEMPLATE = 'Instruction: {}\nResponse:'


def instruction(text: str) -> str:
    """``text`` in the chatbot recipe's template."""
    return INSTRUCTION_TEMPLATE.format(text)


def _load_json(path: str):
    return read_json(path, 'an instruction data file')


class _InstructionDataset(LaVINDataset):

    METAINFO = dict(name='instruction')

    def __init__(self, ann_file: str, template: str = INSTRUCTION_TEMPLATE, **kwargs):
        self.template = template
        super().__init__(ann_file=ann_file, **kwargs)

    def _sample(self, qid: str, question: str, answer: str, img_path: Optional[str]) -> dict:
        for what, text in (('question', question), ('answer', answer)):
            if not isinstance(text, str) or not text.strip():
                raise MMAUserError(f'{self.ann_file}: sample {qid} has an empty {what} ({text!r})')
        return dict(qid=qid, prompt=self.template.format(question.strip()), answer=answer.strip(),
                    img_path=img_path)


@DATASETS.register_module()
class AlpacaDataset(_InstructionDataset):
    """Alpaca JSON (``[{instruction, input, output}]``), text-only.

    The question is the instruction, followed by the input on a new line when it is not empty.
    """

    def load_data_list(self) -> List[dict]:
        out, items = [], _load_json(self.ann_file)
        bad = RecordErrors(self.ann_file)
        for i, item in enumerate(items):  # every record checked: all bad ones reported at once
            with bad.record(f'sample alpaca_{i}'):
                q = item['instruction']
                if item.get('input'):
                    q = f"{q.strip()}\n{item['input']}"
                out.append(self._sample(f'alpaca_{i}', q, item['output'], None))
        bad.raise_if_any(len(items))
        return out


@DATASETS.register_module()
class LLaVAInstructDataset(_InstructionDataset):
    """LLaVA-Instruct-158k conversation JSON (``complex_reasoning_77k``, ``detail_23k``,
    ``conversation_58k``): ``[{id, image, conversations: [{from, value}, ...]}]``.

    Each human/gpt turn pair becomes one sample with the conversation's image; the ``<image>``
    placeholder is removed from the question.

    Args:
        ann_file: The JSON file.
        image_root: COCO ``train2014`` folder.
        image_prefix: Prepended to the ``image`` field to form the file name (COCO train2014
            files are ``COCO_train2014_{id}.jpg``; the JSON holds ``{id}.jpg``).
    """

    def __init__(self, ann_file: str, image_root: str,
                 image_prefix: str = 'COCO_train2014_', **kwargs):
        self.image_root, self.image_file_prefix = image_root, image_prefix
        super().__init__(ann_file=ann_file, **kwargs)

    def load_data_list(self) -> List[dict]:
        out, items = [], _load_json(self.ann_file)
        bad = RecordErrors(self.ann_file)
        for i, item in enumerate(items):  # every record checked: all bad ones reported at once
            with bad.record(f'conversation {i}'):
                out += self._conversation(item)
        bad.raise_if_any(len(items))
        return out

    def _conversation(self, item: dict) -> List[dict]:
        """One sample per human/gpt turn pair of one conversation."""
        img = item.get('image')
        img_path = (osp.join(self.image_root, self.image_file_prefix + img) if img else None)
        turns, out = item['conversations'], []
        for t in range(0, len(turns) - 1, 2):
            human, gpt = turns[t], turns[t + 1]
            if human['from'] != 'human' or gpt['from'] != 'gpt':
                raise MMAUserError(f"{self.ann_file}: conversation {item.get('id')} turn {t} "
                                   f"is {human['from']}/{gpt['from']}, expected human/gpt")
            q = human['value'].replace('<image>', '').strip()
            out.append(self._sample(f"{item.get('id')}_{t // 2}", q, gpt['value'], img_path))
        return out


@DATASETS.register_module()
class LaVINInstructDataset(_InstructionDataset):
    """LaVIN's prepared ``all_data.json``: ``{split: [{instruction, answer, image, image_source,
    qid}]}``, mixing ScienceQA and COCO images.

    ``instruction`` is used as the full prompt text (it is already formatted in that file).

    Args:
        ann_file: ``all_data.json``.
        split: Key of the file (``'train'``).
        sqa_image_root: ScienceQA ``images/train`` (``image_source == 'sqa'``:
            ``{root}/{qid}/image.png``).
        coco_image_root: COCO ``train2014`` (other sources: ``{root}/COCO_train2014_{image}``).
    """

    def __init__(self, ann_file: str, split: str = 'train', sqa_image_root: str = '',
                 coco_image_root: str = '', **kwargs):
        self.split = split
        self.sqa_image_root, self.coco_image_root = sqa_image_root, coco_image_root
        kwargs.setdefault('template', '{}')
        super().__init__(ann_file=ann_file, **kwargs)

    def load_data_list(self) -> List[dict]:
        out, items = [], _load_json(self.ann_file)[self.split]
        bad = RecordErrors(self.ann_file)
        for i, item in enumerate(items):  # every record checked: all bad ones reported at once
            with bad.record(f'record {i}'):
                qid = str(item.get('qid', i))
                img_path = None
                if item.get('image') is not None:
                    if item.get('image_source') == 'sqa':
                        img_path = osp.join(self.sqa_image_root, qid, 'image.png')
                    else:
                        img_path = osp.join(self.coco_image_root,
                                            'COCO_train2014_' + item['image'])
                out.append(self._sample(qid, item['instruction'], item['answer'], img_path))
        bad.raise_if_any(len(items))
        return out

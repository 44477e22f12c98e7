"""Datasets, prompt encoding and collate functions (registered in :mod:`mma.registry`)."""
from .coco_caption import COCOCaptionDataset
from .eval_collate import collate_prompts, encode_prompt
from .mme import MMEDataset
from .prompt_dataset import PromptDataset, instruction, load_image
from .scienceqa_eval import ScienceQAEvalDataset, qcm_prompt
from .truthfulqa import TruthfulQADataset
from .vqav2 import VQAv2Dataset

__all__ = [
    'COCOCaptionDataset', 'MMEDataset', 'PromptDataset', 'ScienceQAEvalDataset',
    'TruthfulQADataset', 'VQAv2Dataset', 'collate_prompts', 'encode_prompt', 'instruction',
    'load_image', 'qcm_prompt'
]

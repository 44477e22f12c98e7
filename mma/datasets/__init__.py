"""Datasets, prompt formats, transforms, collate and samplers (training and evaluation)."""
from .base import LaVINDataset
from .coco_caption import COCOCaptionDataset
from .collate import mma_collate
from .eval_collate import collate_prompts, encode_prompt
from .instruction import AlpacaDataset, LaVINInstructDataset, LLaVAInstructDataset
from .mme import MMEDataset
from .prompt_dataset import PromptDataset, instruction, load_image
from .prompts import OUTPUT_FORMATS, build_prompt, choice_text, context_text, parse_format
from .samplers import LengthGroupedSampler, dataset_lengths
from .scienceqa import ScienceQADataset
from .scienceqa_eval import ScienceQAEvalDataset, qcm_prompt
from .transforms import (IMAGENET_MEAN, IMAGENET_STD, LoadLaVINImage, TokenizeForLaVIN,
                         to_rgb)
from .truthfulqa import TruthfulQADataset
from .vqav2 import VQAv2Dataset

__all__ = [
    'LaVINDataset', 'ScienceQADataset', 'AlpacaDataset', 'LLaVAInstructDataset',
    'LaVINInstructDataset', 'build_prompt', 'choice_text', 'context_text', 'parse_format',
    'OUTPUT_FORMATS', 'LoadLaVINImage', 'TokenizeForLaVIN', 'to_rgb', 'IMAGENET_MEAN',
    'IMAGENET_STD', 'mma_collate', 'LengthGroupedSampler', 'dataset_lengths',
    'COCOCaptionDataset', 'MMEDataset', 'PromptDataset', 'ScienceQAEvalDataset',
    'TruthfulQADataset', 'VQAv2Dataset', 'collate_prompts', 'encode_prompt', 'instruction',
    'load_image', 'qcm_prompt'
]

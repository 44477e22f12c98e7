"""Datasets, prompt formats, transforms, collate and samplers for LaVIN training."""
from .base import LaVINDataset
from .collate import mma_collate
from .instruction import AlpacaDataset, LaVINInstructDataset, LLaVAInstructDataset
from .prompts import OUTPUT_FORMATS, build_prompt, choice_text, context_text, parse_format
from .samplers import LengthGroupedSampler, dataset_lengths
from .scienceqa import ScienceQADataset
from .transforms import (IMAGENET_MEAN, IMAGENET_STD, LoadLaVINImage, TokenizeForLaVIN,
                         to_rgb)

__all__ = [
    'LaVINDataset', 'ScienceQADataset', 'AlpacaDataset', 'LLaVAInstructDataset',
    'LaVINInstructDataset', 'build_prompt', 'choice_text', 'context_text', 'parse_format',
    'OUTPUT_FORMATS', 'LoadLaVINImage', 'TokenizeForLaVIN', 'to_rgb', 'IMAGENET_MEAN',
    'IMAGENET_STD', 'mma_collate', 'LengthGroupedSampler', 'dataset_lengths'
]

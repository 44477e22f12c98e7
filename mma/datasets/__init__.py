"""Datasets, prompt formats, transforms, collate and samplers (training and evaluation)."""
from .base import LaVINDataset
from .coco_caption import COCOCaptionDataset
from .collate import collate_question, mma_collate, run_pipeline
from .follow import follow_model, model_data_facts, prediction_pipeline
from .instruction import (INSTRUCTION_TEMPLATE, AlpacaDataset, LaVINInstructDataset,
                          LLaVAInstructDataset, instruction)
from .mme import MMEDataset
from .packing import mma_pack_collate
from .prompt_dataset import PromptDataset
from .prompts import OUTPUT_FORMATS, build_prompt, choice_text, context_text, parse_format
from .samplers import LengthGroupedSampler, dataset_lengths
from .scienceqa import ScienceQADataset
from .transforms import (IMAGENET_MEAN, IMAGENET_STD, LoadLaVINImage, TokenizeForLaVIN, read_rgb,
                         to_rgb)
from .truthfulqa import TruthfulQADataset
from .validate import DataValidationError, check_dataset_vocab, validate_dataset
from .vqav2 import VQAv2Dataset

__all__ = [
    'LaVINDataset', 'ScienceQADataset', 'AlpacaDataset', 'LLaVAInstructDataset',
    'LaVINInstructDataset', 'build_prompt', 'choice_text', 'context_text', 'parse_format',
    'OUTPUT_FORMATS', 'LoadLaVINImage', 'TokenizeForLaVIN', 'read_rgb', 'to_rgb',
    'IMAGENET_MEAN', 'IMAGENET_STD', 'mma_collate', 'LengthGroupedSampler', 'dataset_lengths',
    'COCOCaptionDataset', 'MMEDataset', 'PromptDataset', 'TruthfulQADataset', 'VQAv2Dataset',
    'INSTRUCTION_TEMPLATE', 'instruction', 'DataValidationError', 'check_dataset_vocab',
    'validate_dataset', 'collate_question', 'run_pipeline', 'prediction_pipeline', 'follow_model',
    'model_data_facts', 'mma_pack_collate'
]

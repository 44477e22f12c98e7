"""LLM backbones (the contract in :mod:`mma.llms.base`) and tokenizers."""
from .args import LLaMAArgs
from .base import KVCache, LLMBackbone
from .checkpoints import load_llama_weights, read_llama_args, save_meta_checkpoint
from .llama import (Attention, FeedForward, LLaMA, RMSNorm, TransformerBlock, apply_rope,
                    build_llama_from_folder, rope_cos_sin)
from .lowbit import QUANTIZATION_MODES, quantize_llama
from .families import PRESETS as LLAMA_PRESETS
from .family import LLMFamily, register_family
from .hf_tokenizer import HFTokenizer
from .tokenizer import SentencePieceTokenizer, build_tokenizer

__all__ = [
    'Attention', 'FeedForward', 'HFTokenizer', 'KVCache', 'LLMBackbone', 'LLaMA', 'LLaMAArgs',
    'LLAMA_PRESETS', 'LLMFamily',
    'QUANTIZATION_MODES', 'RMSNorm', 'SentencePieceTokenizer', 'TransformerBlock', 'apply_rope',
    'build_llama_from_folder', 'build_tokenizer', 'load_llama_weights', 'quantize_llama',
    'read_llama_args', 'register_family', 'rope_cos_sin', 'save_meta_checkpoint'
]

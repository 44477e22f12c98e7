"""LLM backbones and tokenizers."""
from .llama import (Attention, FeedForward, KVCache, LLaMA, LLaMAArgs, RMSNorm, TransformerBlock,
                    apply_rope, rope_cos_sin)
from .checkpoints import (build_llama_from_folder, load_llama_weights, read_llama_args,
                          save_meta_checkpoint)
from .lowbit import QUANTIZATION_MODES, quantize_llama
from .presets import LLAMA_PRESETS
from .hf_tokenizer import HFTokenizer
from .tokenizer import SentencePieceTokenizer, build_tokenizer

__all__ = [
    'Attention', 'FeedForward', 'HFTokenizer', 'KVCache', 'LLaMA', 'LLaMAArgs', 'LLAMA_PRESETS',
    'QUANTIZATION_MODES', 'RMSNorm', 'SentencePieceTokenizer', 'TransformerBlock', 'apply_rope',
    'build_llama_from_folder', 'build_tokenizer', 'load_llama_weights', 'quantize_llama',
    'read_llama_args', 'rope_cos_sin', 'save_meta_checkpoint'
]

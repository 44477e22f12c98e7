"""LLM backbones and tokenizers."""
from .llama import (Attention, FeedForward, KVCache, LLaMA, LLaMAArgs, RMSNorm, TransformerBlock,
                    apply_rope, rope_cos_sin)
from .presets import LLAMA_PRESETS
from .tokenizer import SentencePieceTokenizer

__all__ = [
    'Attention', 'FeedForward', 'KVCache', 'LLaMA', 'LLaMAArgs', 'LLAMA_PRESETS', 'RMSNorm',
    'SentencePieceTokenizer', 'TransformerBlock', 'apply_rope', 'rope_cos_sin'
]

"""SentencePiece tokenizer wrapper (LLaMA's ``tokenizer.model``)."""
import os
from typing import List, Sequence

from mma.fileio import reading
from mma.registry import TOKENIZERS


@TOKENIZERS.register_module()
class SentencePieceTokenizer:
    """A thin wrapper over ``sentencepiece`` with LLaMA's conventions.

    Args:
        model_path: Path of the ``tokenizer.model`` file.

    Attributes:
        bos_id, eos_id, pad_id: Taken from the model file (``pad_id`` is -1 when it has none,
            as LLaMA's).
    """

    def __init__(self, model_path: str):
        import sentencepiece as spm
        if not os.path.isfile(model_path):
            raise FileNotFoundError(f'tokenizer model file not found: {model_path}')
        self.model_path = model_path
        with reading(model_path, 'a SentencePiece tokenizer model (tokenizer.model)'):
            self.sp = spm.SentencePieceProcessor(model_file=model_path)
        self.bos_id, self.eos_id, self.pad_id = self.sp.bos_id(), self.sp.eos_id(), self.sp.pad_id()

    @property
    def vocab_size(self) -> int:
        return self.sp.vocab_size()

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> List[int]:
        ids = self.sp.encode(text)
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode([int(i) for i in ids if 0 <= int(i) < self.vocab_size])

    def __repr__(self) -> str:
        return f'SentencePieceTokenizer({self.model_path!r}, vocab_size={self.vocab_size})'

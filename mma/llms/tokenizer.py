"""SentencePiece tokenizer wrapper (LLaMA's ``tokenizer.model``) and the tokenizer picker.

Every mma tokenizer has ``encode(text, bos=False, eos=False)``, ``decode(ids)``, ``bos_id``,
``eos_id`` (None when the tokenizer has none), ``pad_id`` (-1 when none), ``vocab_size`` and
``model_path``. :func:`build_tokenizer` (``dict(type='AutoTokenizer', path=...)``) takes the one a
weights folder ships: ``tokenizer.model`` (sentencepiece) or ``tokenizer.json`` (HF).
"""
import json
import os
from typing import List, Optional, Sequence

from mma.fileio import reading
from mma.registry import TOKENIZERS

from .families import family_for


@TOKENIZERS.register_module()
class SentencePieceTokenizer:
    """A thin wrapper over ``sentencepiece`` with LLaMA's conventions.

    Args:
        model_path: Path of the ``tokenizer.model`` file.

    Attributes:
        bos_id, eos_id, pad_id: Taken from the model file (``pad_id`` is -1 when it has none,
            as LLaMA's).
    """

    #: A sentencepiece model and the embedding it was trained with have the same size.
    embedding_may_be_padded = False

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


TOKENIZER_FILES = ('tokenizer.model', 'tokenizer.json')


def find_tokenizer_file(folder: str) -> Optional[str]:
    """``tokenizer.model`` or ``tokenizer.json`` in ``folder`` or one level up (Meta's layout
    keeps ``tokenizer.model`` next to the size folders), else None. An HF folder whose family
    names its ``tokenizer_file`` (Phi-3: ``tokenizer.json``) gets that one when present."""
    preferred = _family_tokenizer_file(folder)
    if preferred is not None and os.path.isfile(os.path.join(folder, preferred)):
        return os.path.join(folder, preferred)
    for where in (folder, os.path.dirname(os.path.abspath(folder))):
        for name in TOKENIZER_FILES:
            if os.path.isfile(os.path.join(where, name)):
                return os.path.join(where, name)
    return None


def _family_tokenizer_file(folder: str) -> Optional[str]:
    file = os.path.join(folder, 'config.json')
    if not os.path.isfile(file):
        return None
    try:
        with open(file, encoding='utf-8') as f:
            cfg = json.load(f)
        if cfg.get('model_type') == 'llava':  # llava-hf: tokenizer.json holds its added tokens
            return 'tokenizer.json'
        return family_for(cfg, file).tokenizer_file
    except (ValueError, UnicodeDecodeError):  # not a family's config: the default order
        return None


def build_tokenizer(path: Optional[str] = None, model_path: Optional[str] = None):
    """The tokenizer of a weights folder, or of a tokenizer file.

    Args:
        path: ``tokenizer.model`` (sentencepiece), ``tokenizer.json`` (HF; its special tokens
            from the config files next to it), or a folder holding one of them (or whose parent
            does).
        model_path: The same, under the tokenizer classes' argument name: a config switches
            ``dict(type='SentencePieceTokenizer', model_path=...)`` by its ``type`` alone.

    Raises:
        FileNotFoundError: naming the path, when it holds neither file.
    """
    if (path is None) == (model_path is None):
        raise TypeError('build_tokenizer takes one of path= and model_path=')
    path = path if path is not None else model_path
    if os.path.isdir(path):
        found = find_tokenizer_file(path)
        if found is None:
            raise FileNotFoundError(f'{path} holds no tokenizer: expected tokenizer.model '
                                    '(sentencepiece) or tokenizer.json (HF) in it or its parent')
        path = found
    if path.endswith('.json'):
        from .hf_tokenizer import HFTokenizer
        return HFTokenizer(path)
    return SentencePieceTokenizer(path)


# ``dict(type='AutoTokenizer', path=FOLDER)`` in a config.
TOKENIZERS.register_module(name='AutoTokenizer', module=build_tokenizer)

"""HF ``tokenizer.json`` tokenizer (the ``tokenizers`` package): LLaMA-3.x, Qwen2/2.5, Mistral.

The special tokens are read from the files next to ``tokenizer.json``, in the order
``transformers`` gives them precedence: ``tokenizer_config.json`` (``bos_token``, ``eos_token``,
``pad_token``; a string or an ``AddedToken`` dict), then ``special_tokens_map.json``, then the ids
of ``generation_config.json`` (``bos_token_id``, ``eos_token_id``, ``pad_token_id``). A key set to
null in an earlier file (Qwen's ``"bos_token": null``) means "none"; nothing is hard-coded.
"""
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

from mma.registry import TOKENIZERS

SPECIAL_FILES = ('tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json')
_ROLES = ('bos', 'eos', 'pad')


def _read_json(path: str) -> Optional[dict]:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def special_token_ids(folder: str, vocab: Dict[str, int]) -> Dict[str, Optional[int]]:
    """``{'bos': id, 'eos': id, 'pad': id}`` (None where the files name no such token).

    Args:
        folder: The folder of ``tokenizer.json`` and its config files.
        vocab: Token -> id of the tokenizer, added tokens included.

    Raises:
        ValueError: a file names a token the vocabulary does not have (the file and key named).
    """
    found: Dict[str, Optional[int]] = {}
    size = max(vocab.values()) + 1
    for name in SPECIAL_FILES:
        path = os.path.join(folder, name)
        cfg = _read_json(path)
        if cfg is None:
            continue
        for role in _ROLES:
            if role in found:
                continue  # an earlier file decided (null included)
            if name == 'generation_config.json':
                key = f'{role}_token_id'
                if key in cfg:
                    ids = cfg[key]
                    # generation_config may list several stop ids: the first is the EOS token
                    found[role] = ids[0] if isinstance(ids, list) and ids else ids
                    if found[role] is not None and not 0 <= int(found[role]) < size:
                        raise ValueError(f'{path}: {key}={ids} is outside the vocabulary of the '
                                         f'tokenizer.json next to it')
                continue
            key = f'{role}_token'
            if key not in cfg:
                continue
            token = cfg[key]
            if isinstance(token, dict):  # AddedToken written by transformers 4.x
                token = token.get('content')
            if token is None:
                found[role] = None
            elif token in vocab:
                found[role] = vocab[token]
            else:
                raise ValueError(f'{path}: {key} {token!r} is not a token of the tokenizer.json '
                                 'next to it: the files come from different models')
    return {role: found.get(role) for role in _ROLES}


def folder_stop_ids(folder: str, eos_id: Optional[int], size: int) -> Tuple[int, ...]:
    """Every id that ends a reply: the EOS token (``tokenizer_config.json``) and each id of
    ``generation_config.json``'s ``eos_token_id`` (Llama-3.1: ``<|end_of_text|>``,
    ``<|eom_id|>``, ``<|eot_id|>``; Qwen2.5: ``<|im_end|>``, ``<|endoftext|>``)."""
    ids = [] if eos_id is None else [int(eos_id)]
    gen = _read_json(os.path.join(folder, 'generation_config.json')) or {}
    listed = gen.get('eos_token_id')
    for i in (listed if isinstance(listed, list) else [listed] if listed is not None else []):
        if not 0 <= int(i) < size:
            raise ValueError(f'{folder}/generation_config.json: eos_token_id {i} is outside the '
                             'vocabulary of the tokenizer.json next to it')
        if int(i) not in ids:
            ids.append(int(i))
    return tuple(ids)


@TOKENIZERS.register_module()
class HFTokenizer:
    """An HF ``tokenizer.json`` with mma's tokenizer interface (as :class:`SentencePieceTokenizer`).

    ``encode`` gives the ids ``transformers``' ``AutoTokenizer`` gives for the same text with
    ``add_special_tokens=False``; BOS/EOS are added only when asked for and only when the
    tokenizer has them (Qwen2.5 has no BOS: ``encode(text, bos=True)`` adds nothing). Special
    tokens written in the text (``<|im_end|>``) are parsed as such, as ``transformers`` does.

    Args:
        model_path: Path of ``tokenizer.json``, or of the folder holding it.

    Attributes:
        bos_id, eos_id: Ids of the files' BOS/EOS tokens; None when there is none.
        stop_ids: Every id that ends decoding (:func:`folder_stop_ids`), EOS first.
        pad_id: The pad token's id; -1 when there is none (as SentencePiece's LLaMA tokenizer).
        vocab_size: Largest id + 1 (base vocabulary and added tokens); the embedding of the
            weights may have more rows (Qwen pads it), see
            :func:`mma.llms.checkpoints.check_tokenizer_vocab`.
    """

    #: The LLM's embedding may have a few more rows than this vocabulary (padding for speed).
    embedding_may_be_padded = True

    def __init__(self, model_path: str):
        from tokenizers import Tokenizer
        path = os.path.join(model_path, 'tokenizer.json') if os.path.isdir(model_path) \
            else model_path
        if not os.path.isfile(path):
            raise FileNotFoundError(f'tokenizer.json not found: {path}')
        self.model_path = path
        self.tok = Tokenizer.from_file(path)
        vocab = self.tok.get_vocab(with_added_tokens=True)
        self.vocab_size = max(vocab.values()) + 1
        ids = special_token_ids(os.path.dirname(os.path.abspath(path)), vocab)
        self.bos_id, self.eos_id = ids['bos'], ids['eos']
        self.stop_ids = folder_stop_ids(os.path.dirname(os.path.abspath(path)), self.eos_id,
                                        self.vocab_size)
        self.pad_id = ids['pad'] if ids['pad'] is not None else -1

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> List[int]:
        ids = self.tok.encode(text, add_special_tokens=False).ids
        head = [self.bos_id] if bos and self.bos_id is not None else []
        tail = [self.eos_id] if eos and self.eos_id is not None else []
        return head + ids + tail

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` without special tokens; ids past the vocabulary (padded embedding
        rows a model may still emit) are dropped."""
        keep = [int(i) for i in ids if 0 <= int(i) < self.vocab_size]
        return self.tok.decode(keep, skip_special_tokens=True)

    def __repr__(self) -> str:
        return f'HFTokenizer({self.model_path!r}, vocab_size={self.vocab_size})'

"""LLaMA hyperparameters, and how a preset, keywords and a checkpoint folder combine into them.

The sizes a checkpoint folder states (``params.json`` or ``config.json``) are the truth: a preset or
keyword may repeat them, and one that disagrees is an error naming the field, both values and the
file (:func:`resolve_args`). Fields the folder does not state come from the keywords, then the
preset, then the defaults.
"""
from dataclasses import dataclass
from typing import Optional

from mma.errors import MMAUserError


@dataclass
class LLaMAArgs:
    """Hyperparameters, named as in Meta's ``params.json``, plus the switches of the LLaMA-family
    models that share the block (reference: transformers' Llama / Mistral / Qwen2 modelling).

    Args:
        qkv_bias: Biases on the q/k/v projections (Qwen2 / Qwen2.5).
        intermediate_size: The FFN width, as HF's ``config.json`` states it. When None it is
            derived from ``dim``, ``multiple_of`` and ``ffn_dim_multiplier`` as Meta's
            ``params.json`` leaves it (:attr:`ffn_hidden_dim`).
        tie_embeddings: The output head shares the token embedding (LLaMA-3.2, small Qwen2.5).
        rope_scaling: ``None`` or LLaMA-3.1's ``dict(rope_type='llama3', factor=8.0,
            low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192)``.
    """
    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: Optional[int] = None
    vocab_size: int = 32000
    multiple_of: int = 256
    ffn_dim_multiplier: Optional[float] = None
    intermediate_size: Optional[int] = None
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_seq_len: int = 2048
    qkv_bias: bool = False
    tie_embeddings: bool = False
    rope_scaling: Optional[dict] = None

    def __post_init__(self):
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.rope_scaling is not None:
            self.rope_scaling = dict(self.rope_scaling)
            kind = self.rope_scaling.get('rope_type', self.rope_scaling.get('type'))
            if kind != 'llama3':
                raise ValueError(f'LLaMA: rope scaling {kind!r} is not supported (only LLaMA-3.1\'s '
                                 "'llama3'); remove rope_scaling for plain RoPE")
        if self.dim % self.n_heads or self.n_heads % self.n_kv_heads:
            raise ValueError(f'LLaMA: dim={self.dim} must be divisible by n_heads={self.n_heads}, '
                             f'and n_heads by n_kv_heads={self.n_kv_heads}')

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def ffn_hidden_dim(self) -> int:
        if self.intermediate_size is not None:
            return self.intermediate_size
        hidden = int(2 * 4 * self.dim / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return self.multiple_of * ((hidden + self.multiple_of - 1) // self.multiple_of)


#: Fields whose file value is an upper bound for the configured one, not a value to repeat.
_UPPER_BOUNDS = ('max_seq_len', )
#: Fields that together give the FFN width: compared as the width they give.
_FFN_KEYS = ('multiple_of', 'ffn_dim_multiplier', 'intermediate_size')


def resolve_args(preset_name: Optional[str], preset: dict, kwargs: dict,
                 file_args: Optional[dict] = None, path: Optional[str] = None) -> LLaMAArgs:
    """Combine preset, keywords and the folder's sizes (see the module doc).

    Raises:
        ValueError: a preset or keyword field that disagrees with the folder, naming the field,
            both values and the file.
    """
    given = {**preset, **kwargs}
    if not file_args:
        return LLaMAArgs(**given)
    file_kw = dict(file_args)
    source = file_kw.pop('_source', path)

    def where(name):
        return f'keyword {name}' if name in kwargs else f'preset {preset_name!r} field {name}'

    problems = []
    for name, value in file_kw.items():
        if name not in given or name in _FFN_KEYS:
            continue
        mine = given[name]
        if name in _UPPER_BOUNDS:
            if mine > value:
                problems.append(f'{where(name)}={mine} exceeds the {value} positions {source} '
                                'supports')
        elif not _same(mine, value):
            problems.append(f'{where(name)}={mine!r} but {source} says {name}={value!r}')
    file_ffn = any(k in file_kw for k in _FFN_KEYS)
    merged = {**{k: v for k, v in given.items() if not (file_ffn and k in _FFN_KEYS)},
              **file_kw}
    for name in _UPPER_BOUNDS:
        if name in given and name in file_kw:
            merged[name] = given[name]
    if file_ffn and any(k in given for k in _FFN_KEYS):
        # the given keys replace the file's of the same kind (Meta's rule or an explicit width)
        drop = _FFN_KEYS if 'intermediate_size' in given else ('intermediate_size', )
        mine = LLaMAArgs(**{**{k: v for k, v in merged.items() if k not in drop},
                            **{k: given[k] for k in _FFN_KEYS if k in given}})
        theirs = LLaMAArgs(**merged)
        if mine.ffn_hidden_dim != theirs.ffn_hidden_dim:
            src = ', '.join(f'{where(k)}={given[k]!r}' for k in _FFN_KEYS if k in given)
            problems.append(f'FFN width {mine.ffn_hidden_dim} from {src} but {source} gives '
                            f'{theirs.ffn_hidden_dim}')
    if problems:
        raise MMAUserError('LLaMA sizes disagree with the checkpoint: ' + '; '.join(problems) +
                         '. Sizes come from the checkpoint folder: drop the preset (or the '
                         'keyword), or point checkpoint= at the folder of the intended model.')
    return LLaMAArgs(**merged)


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= 1e-12 * max(abs(float(a)), abs(float(b)), 1.0)
    return a == b

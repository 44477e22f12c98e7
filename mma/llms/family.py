"""LLaMA-like families: the registry and the machinery a family file uses.

A family is one file in :mod:`mma.llms.families` (or in a plugin) that registers an
:class:`LLMFamily`: the HF ``model_type`` s it reads, its ``config.json`` reader (HF fields ->
:class:`~mma.llms.args.LLaMAArgs` fields), its key map (HF names -> mma's, which are Meta's) and its
presets, as data. Everything else is shared: the model (:class:`~mma.llms.llama.LLaMA`), the
weight readers (:mod:`mma.llms.hf_format`, :mod:`mma.llms.meta_format`) and the size checks
(:func:`mma.llms.args.resolve_args`). docs/extending.md, "Adding a LLaMA-like family", walks
through it.
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple, Union

from mma.errors import MMAUserError

#: A fused HF tensor split along its rows: ``((mma suffix, rows), ...)`` where rows is ``'q'``
#: (``n_heads * head_dim``), ``'kv'`` (``n_kv_heads * head_dim``) or ``'ffn'`` (FFN width).
Split = Tuple[Tuple[str, str], ...]

#: The LLaMA block's HF layer keys (after ``model.layers.{i}.``) -> mma's (after ``layers.{i}.``).
LLAMA_LAYER_KEYS: Dict[str, Union[str, Split]] = {
    'self_attn.q_proj.weight': 'attention.wq.weight',
    'self_attn.k_proj.weight': 'attention.wk.weight',
    'self_attn.v_proj.weight': 'attention.wv.weight',
    'self_attn.o_proj.weight': 'attention.wo.weight',
    'mlp.gate_proj.weight': 'feed_forward.w1.weight',
    'mlp.down_proj.weight': 'feed_forward.w2.weight',
    'mlp.up_proj.weight': 'feed_forward.w3.weight',
    'input_layernorm.weight': 'attention_norm.weight',
    'post_attention_layernorm.weight': 'ffn_norm.weight',
}


@dataclass(frozen=True)
class LLMFamily:
    """One LLaMA-like family: what differs from the LLaMA block is data and a config reader.

    Args:
        name: The family's name (``'qwen2'``), used in messages.
        model_types: HF ``config.json`` ``model_type`` values this family reads.
        read_hf_config: ``(config dict, file path) -> LLaMAArgs fields``; raises
            :class:`ValueError` naming the file for a variant the LLaMA block cannot run.
        layer_keys: HF layer key (after ``model.layers.{i}.``) -> mma key (after
            ``layers.{i}.``), or a :data:`Split` for a fused tensor.
        presets: Preset name -> LLaMAArgs fields, sizes stated explicitly (``intermediate_size``).
        tokenizer_file: The tokenizer file to take from a folder that ships several (default:
            ``tokenizer.model`` before ``tokenizer.json``).
    """
    name: str
    model_types: Tuple[str, ...]
    read_hf_config: Callable[[dict, str], dict]
    layer_keys: Dict[str, Union[str, Split]] = field(default_factory=lambda: LLAMA_LAYER_KEYS)
    presets: Dict[str, dict] = field(default_factory=dict)
    tokenizer_file: Optional[str] = None


#: Registered families by name, and every family's presets by preset name.
FAMILIES: Dict[str, LLMFamily] = {}
PRESETS: Dict[str, dict] = {}


def register_family(family: LLMFamily, force: bool = False) -> LLMFamily:
    """Add a family and its presets; a name, ``model_type`` or preset name already taken is an
    error unless ``force`` (then the family of the same name is replaced)."""
    if force and family.name in FAMILIES:
        for name in FAMILIES.pop(family.name).presets:
            PRESETS.pop(name, None)
    taken = {t: f.name for f in FAMILIES.values() for t in f.model_types}
    clash = [f'model_type {t!r} ({taken[t]})' for t in family.model_types if t in taken] + \
        [f'preset {p!r}' for p in family.presets if p in PRESETS]
    if family.name in FAMILIES or clash:
        raise ValueError(f'LLM family {family.name!r}: already registered '
                         f'({", ".join(clash) or "the name"})')
    FAMILIES[family.name] = family
    PRESETS.update(family.presets)
    return family


#: ``model_type`` s of LLaVA folders whose LLM mma reads: llava-hf's
#: ``LlavaForConditionalGeneration`` (``text_config`` holds the LLM's config) and LLaVA's own
#: release (a LLaMA config plus ``mm_*``).
LLAVA_TYPES = ('llava', 'llava_llama')
#: transformers' ``LlamaConfig`` defaults: llava-hf's transformers 4 ``text_config`` states only
#: the fields that differ from them (vicuna-7b's sizes are these defaults).
_LLAMA_DEFAULTS = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008,
                       num_hidden_layers=32, num_attention_heads=32,
                       max_position_embeddings=2048, rms_norm_eps=1e-6, hidden_act='silu')


def llm_config(cfg: dict) -> dict:
    """The LLM's part of an HF ``config.json`` dict: the dict itself, or a LLaVA folder's
    language model config (``text_config``, LlamaConfig defaults filled in; LLaVA's release
    ``llava_llama`` is a LLaMA config)."""
    model_type = cfg.get('model_type')
    if model_type == 'llava_llama':
        return dict(cfg, model_type='llama')
    if model_type != 'llava':
        return cfg
    text = dict(cfg.get('text_config') or {})
    text.setdefault('model_type', 'llama')
    if text['model_type'] == 'llama':
        text = {**_LLAMA_DEFAULTS, **text}
    text.setdefault('tie_word_embeddings', cfg.get('tie_word_embeddings', False))
    return text


def family_for(cfg: dict, path: str = 'config.json') -> LLMFamily:
    """The family of an HF ``config.json`` dict (by ``model_type``, default ``'llama'``; a LLaVA
    folder's by its language model, :func:`llm_config`)."""
    model_type = llm_config(cfg).get('model_type', 'llama')
    for family in FAMILIES.values():
        if model_type in family.model_types:
            return family
    known = sorted(t for f in FAMILIES.values() for t in f.model_types)
    raise MMAUserError(f'{path}: model_type={model_type!r} is not a registered LLM family '
                       f'(supported: {", ".join(known)}); see docs/extending.md, "Adding a '
                       'LLaMA-like family"')


def hf_rope(cfg: dict) -> dict:
    """RoPE settings of an HF config in either form: transformers 5's ``rope_parameters`` or
    transformers 4's top-level ``rope_theta`` / ``rope_scaling``; ``rope_type`` always set."""
    rope = dict(cfg.get('rope_parameters') or {})
    scaling = dict(cfg.get('rope_scaling') or {})
    rope.update({k: v for k, v in scaling.items() if k not in rope})
    rope.setdefault('rope_theta', cfg.get('rope_theta', 10000.0))
    rope['rope_type'] = rope.get('rope_type', rope.get('type')) or 'default'
    return rope


def read_llama_like(cfg: dict, path: str, family: str, qkv_bias: bool = False,
                    rope_types: Tuple[str, ...] = ('default', )) -> dict:
    """LLaMAArgs fields from the HF fields every LLaMA-like config shares.

    ``rope_scaling`` is left None (a family supporting a scaling fills it from :func:`hf_rope`).
    A ``sliding_window`` shorter than ``max_position_embeddings`` becomes ``max_seq_len``: a
    sequence no longer than the window attends exactly as with full causal attention, which is
    what the LLaMA block computes.

    Args:
        cfg: The ``config.json`` dict.
        path: The file, for messages.
        family: The family's name, for messages.
        qkv_bias: The family has biases on q/k/v (Qwen2); ``attention_bias`` is refused otherwise
            (it also puts a bias on ``o_proj``).
        rope_types: RoPE types the family accepts.

    Raises:
        ValueError: a variant the LLaMA block does not compute, naming the file and fields.
    """
    unsupported = []
    if cfg.get('hidden_act', 'silu') != 'silu':
        unsupported.append(f"hidden_act={cfg['hidden_act']!r}")
    if not qkv_bias and cfg.get('attention_bias'):
        unsupported.append('attention_bias (a bias on o_proj too)')
    if cfg.get('mlp_bias'):
        unsupported.append('mlp_bias')
    rope = hf_rope(cfg)
    if rope['rope_type'] not in rope_types:
        unsupported.append(f"rope scaling {rope['rope_type']!r} (supported: "
                           f"{', '.join(rope_types)})")
    if float(rope.get('partial_rotary_factor', 1.0)) != 1.0:
        unsupported.append(f"partial_rotary_factor={rope['partial_rotary_factor']}")
    dim, n_heads = cfg['hidden_size'], cfg['num_attention_heads']
    if cfg.get('head_dim') not in (None, dim // n_heads):
        unsupported.append(f"head_dim={cfg['head_dim']} != hidden_size / num_attention_heads")
    if unsupported:
        raise ValueError(f'{path}: unsupported {family} variant ({", ".join(unsupported)})')
    max_len = cfg.get('max_position_embeddings', 2048)
    window = cfg.get('sliding_window')
    if window and cfg.get('use_sliding_window', True) and window < max_len:
        max_len = window
    return dict(dim=dim, n_layers=cfg['num_hidden_layers'], n_heads=n_heads,
                n_kv_heads=cfg.get('num_key_value_heads') or n_heads,
                vocab_size=cfg['vocab_size'], intermediate_size=cfg['intermediate_size'],
                norm_eps=cfg.get('rms_norm_eps', 1e-6), rope_theta=float(rope['rope_theta']),
                max_seq_len=max_len, qkv_bias=qkv_bias,
                tie_embeddings=bool(cfg.get('tie_word_embeddings', False)), rope_scaling=None)


def split_rows(split: Split, args) -> Optional[Tuple[int, ...]]:
    """Rows of each piece of a fused tensor for ``args`` (:class:`~mma.llms.args.LLaMAArgs`)."""
    rows = dict(q=args.n_heads * args.head_dim, kv=args.n_kv_heads * args.head_dim,
                ffn=args.ffn_hidden_dim)
    return tuple(rows[kind] for _, kind in split)

"""LLaMA-1/2/3.x and Vicuna (HF ``model_type: llama``; Meta's ``params.json`` folders too)."""
from dataclasses import fields

from ..args import LLaMAArgs
from ..family import LLMFamily, hf_rope, read_llama_like, register_family

#: LLaMA-3.1's RoPE scaling, the numbers Meta's code fixes (``use_scaled_rope`` in params.json).
LLAMA3_ROPE = dict(rope_type='llama3', factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                   original_max_position_embeddings=8192)


def read_hf_config(cfg: dict, path: str) -> dict:
    """LLaMA's ``config.json``: the shared fields plus LLaMA-3.1's ``llama3`` RoPE scaling."""
    kw = read_llama_like(cfg, path, 'LLaMA', rope_types=('default', 'llama3'))
    rope = hf_rope(cfg)
    if rope['rope_type'] == 'llama3':
        kw['rope_scaling'] = {k: type(v)(rope.get(k, v)) for k, v in LLAMA3_ROPE.items()}
        kw['rope_scaling']['factor'] = float(rope['factor'])  # no default: the file states it
    return kw


def read_meta_params(raw: dict) -> dict:
    """LLaMAArgs fields from Meta's ``params.json``, with the fields Meta's code leaves implicit:
    ``n_kv_heads`` = ``n_heads``, ``rope_theta`` 10000, no ``ffn_dim_multiplier`` (the FFN width
    is derived from ``dim``, ``multiple_of`` and ``ffn_dim_multiplier``), ``use_scaled_rope`` =
    :data:`LLAMA3_ROPE`. ``vocab_size`` -1 is left to the caller (rows of the weights)."""
    names = {f.name for f in fields(LLaMAArgs)}  # mma's own folders may state any of them
    kw = {k: v for k, v in raw.items() if k in names}
    kw.setdefault('n_kv_heads', kw.get('n_heads'))
    kw.setdefault('rope_theta', 10000.0)
    kw.setdefault('ffn_dim_multiplier', None)
    if raw.get('use_scaled_rope'):
        kw['rope_scaling'] = dict(LLAMA3_ROPE)
    return kw


_LLAMA3 = dict(dim=4096, n_layers=32, n_heads=32, n_kv_heads=8, vocab_size=128256,
               intermediate_size=14336, norm_eps=1e-5, rope_theta=500000.0)

PRESETS = {
    'llama-7b': dict(dim=4096, n_layers=32, n_heads=32, intermediate_size=11008, norm_eps=1e-6),
    'llama-13b': dict(dim=5120, n_layers=40, n_heads=40, intermediate_size=13824, norm_eps=1e-6),
    'llama2-7b': dict(dim=4096, n_layers=32, n_heads=32, intermediate_size=11008, norm_eps=1e-5,
                      max_seq_len=4096),
    'llama2-13b': dict(dim=5120, n_layers=40, n_heads=40, intermediate_size=13824, norm_eps=1e-5,
                       max_seq_len=4096),
    # Vicuna v1.5 is LLaMA-2 fine-tuned (same sizes); v1.1/v1.3 are LLaMA-1 sizes.
    'vicuna-7b-v1.5': dict(dim=4096, n_layers=32, n_heads=32, intermediate_size=11008,
                           norm_eps=1e-5, max_seq_len=4096),
    'llama3-8b': dict(_LLAMA3, max_seq_len=8192),
    'llama3.1-8b': dict(_LLAMA3, rope_scaling=LLAMA3_ROPE, max_seq_len=131072),
    # Test and CPU-benchmark sizes: the FFN width follows dim (Meta's rule), so that a test may
    # change dim with the preset.
    'tiny': dict(dim=64, n_layers=2, n_heads=4, vocab_size=512, multiple_of=16, max_seq_len=512),
    'tiny-gqa': dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=512, multiple_of=16,
                     max_seq_len=512),
    'medium': dict(dim=512, n_layers=4, n_heads=8, vocab_size=32000, multiple_of=256,
                   max_seq_len=512),
}

FAMILY = register_family(LLMFamily(name='llama', model_types=('llama', ),
                                   read_hf_config=read_hf_config, presets=PRESETS))

"""Qwen2 / Qwen2.5 (HF ``model_type: qwen2``): the LLaMA block with q/k/v biases, GQA and, in the
small sizes, tied embeddings."""
from ..family import LLAMA_LAYER_KEYS, LLMFamily, read_llama_like, register_family


def read_hf_config(cfg: dict, path: str) -> dict:
    """Qwen2's ``config.json``: the shared fields with ``qkv_bias``; ``sliding_window`` is used
    only where ``use_sliding_window`` says so."""
    return read_llama_like(cfg, path, 'Qwen2', qkv_bias=True)


LAYER_KEYS = dict(LLAMA_LAYER_KEYS, **{
    'self_attn.q_proj.bias': 'attention.wq.bias',
    'self_attn.k_proj.bias': 'attention.wk.bias',
    'self_attn.v_proj.bias': 'attention.wv.bias',
})

PRESETS = {
    'qwen2.5-7b': dict(dim=3584, n_layers=28, n_heads=28, n_kv_heads=4, vocab_size=152064,
                       intermediate_size=18944, norm_eps=1e-6, rope_theta=1e6, qkv_bias=True,
                       max_seq_len=32768),
}

FAMILY = register_family(LLMFamily(name='qwen2', model_types=('qwen2', ),
                                   read_hf_config=read_hf_config, layer_keys=LAYER_KEYS,
                                   presets=PRESETS))

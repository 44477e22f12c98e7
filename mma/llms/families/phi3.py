"""Phi-3 mini / medium, 4k context (HF ``model_type: phi3``): the LLaMA block with q/k/v fused
into ``qkv_proj`` and gate/up into ``gate_up_proj``, split into mma's ``wq/wk/wv`` and ``w1/w3``
on loading. The 128k folders' ``longrope`` scaling and Phi-3.5/4's partial rotary embedding are
refused; the 4k folders' 2047-token sliding window caps ``max_seq_len`` (shorter sequences attend
exactly as with full causal attention). The folder's ``tokenizer.json`` is its tokenizer: the
``tokenizer.model`` next to it lacks the chat tokens (32,000 pieces for 32,064 embedding rows)."""
from ..family import LLAMA_LAYER_KEYS, LLMFamily, read_llama_like, register_family


def read_hf_config(cfg: dict, path: str) -> dict:
    """Phi-3's ``config.json``: the shared fields; plain RoPE only."""
    return read_llama_like(cfg, path, 'Phi-3')


_FUSED = ('self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'mlp.gate_proj',
          'mlp.up_proj')
LAYER_KEYS = dict({k: v for k, v in LLAMA_LAYER_KEYS.items() if not k.startswith(_FUSED)}, **{
    # (B, T, D) @ qkv_proj.T -> [q (n_heads * Dh) | k (n_kv_heads * Dh) | v (n_kv_heads * Dh)]
    'self_attn.qkv_proj.weight': (('attention.wq.weight', 'q'), ('attention.wk.weight', 'kv'),
                                  ('attention.wv.weight', 'kv')),
    # [gate (the SiLU input, w1) | up (w3)], as Phi3MLP's chunk(2)
    'mlp.gate_up_proj.weight': (('feed_forward.w1.weight', 'ffn'),
                                ('feed_forward.w3.weight', 'ffn')),
})

PRESETS = {
    'phi-3-mini-4k': dict(dim=3072, n_layers=32, n_heads=32, n_kv_heads=32, vocab_size=32064,
                          intermediate_size=8192, norm_eps=1e-5, rope_theta=10000.0,
                          max_seq_len=2047),
    'phi-3-medium-4k': dict(dim=5120, n_layers=40, n_heads=40, n_kv_heads=10, vocab_size=32064,
                            intermediate_size=17920, norm_eps=1e-5, rope_theta=10000.0,
                            max_seq_len=2047),
}

FAMILY = register_family(LLMFamily(name='phi3', model_types=('phi3', ),
                                   read_hf_config=read_hf_config, layer_keys=LAYER_KEYS,
                                   presets=PRESETS, tokenizer_file='tokenizer.json'))

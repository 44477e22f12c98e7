"""Mistral 7B v0.1-v0.3 (HF ``model_type: mistral``): the LLaMA block with GQA."""
from ..family import LLMFamily, read_llama_like, register_family


def read_hf_config(cfg: dict, path: str) -> dict:
    """Mistral's ``config.json``: the shared fields (v0.1's 4096-token sliding window caps
    ``max_seq_len``)."""
    return read_llama_like(cfg, path, 'Mistral')


PRESETS = {
    'mistral-7b-v0.3': dict(dim=4096, n_layers=32, n_heads=32, n_kv_heads=8, vocab_size=32768,
                            intermediate_size=14336, norm_eps=1e-5, rope_theta=1e6,
                            max_seq_len=32768),
}

FAMILY = register_family(LLMFamily(name='mistral', model_types=('mistral', ),
                                   read_hf_config=read_hf_config, presets=PRESETS))

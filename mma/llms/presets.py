"""Named LLaMA-family sizes: numbers only, no logic. A checkpoint folder states its own sizes
(``LLaMA(checkpoint=FOLDER)`` needs no preset); a preset names a size for building without the
files (counting parameters, meta-device tests) and is checked against the folder when both are
given."""

_LLAMA3_ROPE = dict(rope_type='llama3', factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                    original_max_position_embeddings=8192)

LLAMA_PRESETS = {
    'llama-7b': dict(dim=4096, n_layers=32, n_heads=32, multiple_of=256, norm_eps=1e-6),
    'llama-13b': dict(dim=5120, n_layers=40, n_heads=40, multiple_of=256, norm_eps=1e-6),
    'llama2-7b': dict(dim=4096, n_layers=32, n_heads=32, multiple_of=256, norm_eps=1e-5,
                      max_seq_len=4096),
    'llama2-13b': dict(dim=5120, n_layers=40, n_heads=40, multiple_of=256, norm_eps=1e-5,
                       max_seq_len=4096),
    # Vicuna v1.5 is LLaMA-2 fine-tuned (same sizes); v1.1/v1.3 are LLaMA-1 sizes.
    'vicuna-7b-v1.5': dict(dim=4096, n_layers=32, n_heads=32, multiple_of=256, norm_eps=1e-5,
                           max_seq_len=4096),
    'llama3-8b': dict(dim=4096, n_layers=32, n_heads=32, n_kv_heads=8, vocab_size=128256,
                      multiple_of=1024, ffn_dim_multiplier=1.3, norm_eps=1e-5,
                      rope_theta=500000.0, max_seq_len=8192),
    'llama3.1-8b': dict(dim=4096, n_layers=32, n_heads=32, n_kv_heads=8, vocab_size=128256,
                        multiple_of=1024, ffn_dim_multiplier=1.3, norm_eps=1e-5,
                        rope_theta=500000.0, rope_scaling=_LLAMA3_ROPE, max_seq_len=131072),
    'mistral-7b-v0.3': dict(dim=4096, n_layers=32, n_heads=32, n_kv_heads=8, vocab_size=32768,
                            multiple_of=1024, ffn_dim_multiplier=1.3, norm_eps=1e-5,
                            rope_theta=1e6, max_seq_len=32768),
    'qwen2.5-7b': dict(dim=3584, n_layers=28, n_heads=28, n_kv_heads=4, vocab_size=152064,
                       multiple_of=256, ffn_dim_multiplier=1.98, norm_eps=1e-6, rope_theta=1e6,
                       qkv_bias=True, max_seq_len=32768),
    # Tiny sizes for tests and the CPU demo.
    'tiny': dict(dim=64, n_layers=2, n_heads=4, vocab_size=512, multiple_of=16, max_seq_len=512),
    'tiny-gqa': dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=512, multiple_of=16,
                     max_seq_len=512),
    # The "medium" CPU benchmark size.
    'medium': dict(dim=512, n_layers=4, n_heads=8, vocab_size=32000, multiple_of=256,
                   max_seq_len=512),
}

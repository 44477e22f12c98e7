"""Named LLaMA sizes: numbers only, no logic."""

LLAMA_PRESETS = {
    'llama-7b': dict(dim=4096, n_layers=32, n_heads=32, multiple_of=256, norm_eps=1e-6),
    'llama-13b': dict(dim=5120, n_layers=40, n_heads=40, multiple_of=256, norm_eps=1e-6),
    'llama2-7b': dict(dim=4096, n_layers=32, n_heads=32, multiple_of=256, norm_eps=1e-5,
                      max_seq_len=4096),
    'llama2-13b': dict(dim=5120, n_layers=40, n_heads=40, multiple_of=256, norm_eps=1e-5,
                       max_seq_len=4096),
    # Tiny sizes for tests and the CPU demo.
    'tiny': dict(dim=64, n_layers=2, n_heads=4, vocab_size=512, multiple_of=16, max_seq_len=512),
    'tiny-gqa': dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=512, multiple_of=16,
                     max_seq_len=512),
    # The "medium" CPU benchmark size.
    'medium': dict(dim=512, n_layers=4, n_heads=8, vocab_size=32000, multiple_of=256,
                   max_seq_len=512),
}

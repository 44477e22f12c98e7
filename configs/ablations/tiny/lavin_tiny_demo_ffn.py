# Tiny demo ablation: the LLM adapters feed the FFN instead of the attention.
# Shorten with --cfg-options, e.g. train_cfg.max_epochs=1 (see tools/sweep.py).
_base_ = ['../../lavin_tiny_demo.py']

model = dict(llm_adapter_placement='ffn')

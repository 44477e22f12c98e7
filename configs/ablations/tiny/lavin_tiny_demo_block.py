# Tiny demo ablation: routed adapters before the attention and before the FFN of each LLM block.
# Shorten with --cfg-options, e.g. train_cfg.max_epochs=1 (see tools/sweep.py).
_base_ = ['../../lavin_tiny_demo.py']

model = dict(llm_adapter_placement='block')

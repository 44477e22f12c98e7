# Tiny demo ablation: adapter bottleneck width 16 (demo: 8) in the LLM and the ViT adapters.
# Shorten with --cfg-options, e.g. train_cfg.max_epochs=1 (see tools/sweep.py).
_base_ = ['../../lavin_tiny_demo.py']

model = dict(llm_adapter=dict(hidden_dim=16), vit_adapter=dict(hidden_dim=16))

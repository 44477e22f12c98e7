# Tiny demo ablation: no adapters in the ViT; visual tokens and projector remain.
# Shorten with --cfg-options, e.g. train_cfg.max_epochs=1 (see tools/sweep.py).
_base_ = ['../../lavin_tiny_demo.py']

model = dict(vit_adapter=None)

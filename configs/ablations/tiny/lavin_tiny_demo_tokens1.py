# Tiny demo ablation: 1 visual token (demo: 2), the CLS token after the last of the ViT's 2 blocks.
# Shorten with --cfg-options, e.g. train_cfg.max_epochs=1 (see tools/sweep.py).
_base_ = ['../../lavin_tiny_demo.py']

model = dict(vision=dict(feature_every=2))

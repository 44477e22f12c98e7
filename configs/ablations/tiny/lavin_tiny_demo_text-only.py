# Tiny demo ablation: text-only model (no ViT, no visual tokens): every sample is treated as
# text-only and images are ignored, so image questions can only be guessed.
# Shorten with --cfg-options, e.g. train_cfg.max_epochs=1 (see tools/sweep.py).
_base_ = ['../../lavin_tiny_demo.py']

model = dict(vision=None, vit_adapter=None)

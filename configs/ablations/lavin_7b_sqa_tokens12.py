# Ablation of LaVIN-7B SQA: 12 visual tokens (LaVIN: 6), the CLS token after every 2nd block of
# ViT-L/14 (blocks 2, 4, ..., 24).
# The data pipeline follows: its visual tokens per image come from the model.
_base_ = ['../lavin_7b_sqa.py']

model = dict(vision=dict(feature_every=2))

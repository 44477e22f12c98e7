# Ablation of LaVIN-13B SQA: no adapters in the ViT; visual tokens and projector remain.
_base_ = ['../lavin_13b_sqa.py']

model = dict(vit_adapter=None)

# Ablation of LaVIN-7B SQA: no adapters in the ViT (the CLIP encoder stays exactly as pretrained);
# the visual tokens and the projector remain (paper ablation: "+ ViT adapters" 87.34).
_base_ = ['../lavin_7b_sqa.py']

model = dict(vit_adapter=None)

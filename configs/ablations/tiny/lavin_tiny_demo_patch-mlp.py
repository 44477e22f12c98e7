# Tiny demo, LLaVA-1.5-style visual input: the patch tokens of the ViT's last block (16 per 32 px
# image, CLS dropped) through LLaVA-1.5's MLP projector (Linear-GELU-Linear, hidden = LLM dim)
# instead of LaVIN's CLS tokens and projector. Same assets as the demo.
_base_ = ['../../lavin_tiny_demo.py']

model = dict(vision=dict(feature_type='patch', patch_layer=-1),
             projector=dict(_delete_=True, type='MLPProjector'))

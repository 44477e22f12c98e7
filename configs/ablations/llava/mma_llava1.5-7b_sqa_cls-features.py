# MMA on LLaVA-1.5 (configs/mma_llava1.5-7b_sqa.py) with LaVIN's visual features instead of the
# patch tokens: the CLS token after every 4th block of ViT-L/14-336 (6 tokens instead of 576).
_base_ = ['../../mma_llava1.5-7b_sqa.py']

model = dict(vision=dict(feature_type='cls', feature_every=4))

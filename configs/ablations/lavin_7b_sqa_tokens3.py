# Ablation of LaVIN-7B SQA: 3 visual tokens (LaVIN: 6), the CLS token after every 8th block of
# ViT-L/14 (blocks 8, 16, 24 of 24). The data pipeline reserves the same number of positions.
_base_ = ['../lavin_7b_sqa.py']

num_visual_tokens = 3
model = dict(vision=dict(feature_every=8))
train_dataloader = dict(dataset=dict(pipeline=[
    _base_.train_pipeline[0], dict(_base_.train_pipeline[1], num_visual_tokens=num_visual_tokens)
]))
test_dataloader = dict(dataset=dict(pipeline=[
    _base_.test_pipeline[0], dict(_base_.test_pipeline[1], num_visual_tokens=num_visual_tokens)
]))

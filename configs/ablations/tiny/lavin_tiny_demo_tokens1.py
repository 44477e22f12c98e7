# Tiny demo ablation: 1 visual token (demo: 2), the CLS token after the last of the ViT's 2 blocks.
# Shorten with --cfg-options, e.g. train_cfg.max_epochs=1 (see tools/sweep.py).
_base_ = ['../../lavin_tiny_demo.py']

num_visual_tokens = 1
model = dict(vision=dict(feature_every=2))
train_dataloader = dict(dataset=dict(pipeline=[
    _base_.train_dataloader.dataset.pipeline[0],
    dict(_base_.train_dataloader.dataset.pipeline[1], num_visual_tokens=num_visual_tokens)]))
test_dataloader = dict(dataset=dict(pipeline=[
    _base_.test_dataloader.dataset.pipeline[0],
    dict(_base_.test_dataloader.dataset.pipeline[1], num_visual_tokens=num_visual_tokens)]))

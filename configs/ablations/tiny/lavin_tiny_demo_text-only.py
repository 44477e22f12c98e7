# Tiny demo ablation: text-only model (no ViT, no visual tokens): every sample is treated as
# text-only and images are ignored, so image questions can only be guessed.
# Shorten with --cfg-options, e.g. train_cfg.max_epochs=1 (see tools/sweep.py).
_base_ = ['../../lavin_tiny_demo.py']

num_visual_tokens = 0
model = dict(vision=None, vit_adapter=None)
train_dataloader = dict(dataset=dict(pipeline=[
    _base_.train_dataloader.dataset.pipeline[0],
    dict(_base_.train_dataloader.dataset.pipeline[1], num_visual_tokens=num_visual_tokens)]))
test_dataloader = dict(dataset=dict(pipeline=[
    _base_.test_dataloader.dataset.pipeline[0],
    dict(_base_.test_dataloader.dataset.pipeline[1], num_visual_tokens=num_visual_tokens)]))

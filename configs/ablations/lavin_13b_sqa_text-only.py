# Ablation of LaVIN-13B SQA: text-only model (no ViT, no visual tokens, no projector), routed LLM
# adapters; every sample is treated as text-only (see ablations/lavin_7b_sqa_text-only.py).
_base_ = ['../lavin_13b_sqa.py']

num_visual_tokens = 0
model = dict(vision=None, vit_adapter=None)
train_dataloader = dict(dataset=dict(pipeline=[
    _base_.train_pipeline[0], dict(_base_.train_pipeline[1], num_visual_tokens=num_visual_tokens)
]))
test_dataloader = dict(dataset=dict(pipeline=[
    _base_.test_pipeline[0], dict(_base_.test_pipeline[1], num_visual_tokens=num_visual_tokens)
]))

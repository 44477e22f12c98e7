# Ablation of LaVIN-13B SQA: text-only model (no ViT, no visual tokens, no projector), routed LLM
# adapters; every sample is treated as text-only (see ablations/lavin_7b_sqa_text-only.py).
_base_ = ['../lavin_13b_sqa.py']

model = dict(vision=None, vit_adapter=None)
# No ViT says the image size, so the pipeline states the 224 px it loads images at.
train_dataloader = dict(dataset=dict(pipeline=[dict(_base_.train_pipeline[0], size=224),
                                               _base_.train_pipeline[1]]))
test_dataloader = dict(dataset=dict(pipeline=[dict(_base_.test_pipeline[0], size=224),
                                              _base_.test_pipeline[1]]))

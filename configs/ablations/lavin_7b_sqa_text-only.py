# Ablation of LaVIN-7B SQA: text-only model (no ViT, no visual tokens, no projector), routed LLM
# adapters as in LaVIN. With vision=None, LaVIN treats every sample as text-only (modality token 0)
# and ignores images; image questions keep their "Image: " prefix, in training as in evaluation.
# (The pipeline still loads the images, which the collate step expects for image samples.)
_base_ = ['../lavin_7b_sqa.py']

model = dict(vision=None, vit_adapter=None)
# No ViT says the image size, so the pipeline states the 224 px it loads images at.
train_dataloader = dict(dataset=dict(pipeline=[dict(_base_.train_pipeline[0], size=224),
                                               _base_.train_pipeline[1]]))
test_dataloader = dict(dataset=dict(pipeline=[dict(_base_.test_pipeline[0], size=224),
                                              _base_.test_pipeline[1]]))

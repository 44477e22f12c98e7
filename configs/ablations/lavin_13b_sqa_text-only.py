# Ablation of LaVIN-13B SQA: text-only model (no ViT, no visual tokens, no projector), routed LLM
# adapters; every sample is treated as text-only (see ablations/lavin_7b_sqa_text-only.py).
_base_ = ['../lavin_13b_sqa.py']

model = dict(vision=None, vit_adapter=None)

# Ablation of LaVIN-13B SQA: adapter bottleneck width 16 (LaVIN: 8) in the LLM and ViT adapters.
_base_ = ['../lavin_13b_sqa.py']

model = dict(llm_adapter=dict(hidden_dim=16), vit_adapter=dict(hidden_dim=16))

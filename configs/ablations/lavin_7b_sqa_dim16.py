# Ablation of LaVIN-7B SQA: adapter bottleneck width 16 (LaVIN: 8) in the LLM and the ViT adapters.
_base_ = ['../lavin_7b_sqa.py']

model = dict(llm_adapter=dict(hidden_dim=16), vit_adapter=dict(hidden_dim=16))

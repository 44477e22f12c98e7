# Ablation of LaVIN-7B SQA: router temperature 1 (LaVIN-7B: 10) in the LLM and the ViT routers.
_base_ = ['../lavin_7b_sqa.py']

temperature = 1.0
model = dict(llm_adapter=dict(router=dict(temperature=temperature)),
             vit_adapter=dict(router=dict(temperature=temperature)))

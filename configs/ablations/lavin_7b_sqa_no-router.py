# Ablation of LaVIN-7B SQA: no modality router. A plain RepAdapter (one up-projection, no experts)
# in every LLaMA and ViT block instead of the routed one (paper ablation: "+ router" 89.41).
_base_ = ['../lavin_7b_sqa.py']

adapter = dict(type='RepAdapter', hidden_dim=8, groups=2, scale=1.0, dropout=0.1)
model = dict(llm_adapter=dict(_delete_=True, **adapter),
             vit_adapter=dict(_delete_=True, **adapter))

# Ablation of LaVIN-7B SQA: plain (unrouted) RepAdapters in the ViT, routed ones in the LLM.
_base_ = ['../lavin_7b_sqa.py']

model = dict(vit_adapter=dict(_delete_=True, type='RepAdapter', hidden_dim=8, groups=2, scale=1.0,
                              dropout=0.1))

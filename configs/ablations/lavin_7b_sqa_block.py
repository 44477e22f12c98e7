# Ablation of LaVIN-7B SQA: two routed adapters per LLaMA block, before the attention and before
# the FFN (placement 'block'); the ViT adapters are unchanged.
_base_ = ['../lavin_7b_sqa.py']

model = dict(llm_adapter_placement='block')

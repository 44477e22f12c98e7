# Ablation of LaVIN-13B SQA: two routed adapters per LLaMA block (before the attention and the FFN).
_base_ = ['../lavin_13b_sqa.py']

model = dict(llm_adapter_placement='block')

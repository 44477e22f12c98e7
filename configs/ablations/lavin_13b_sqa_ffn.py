# Ablation of LaVIN-13B SQA: the LLM adapters feed the FFN instead of the attention.
_base_ = ['../lavin_13b_sqa.py']

model = dict(llm_adapter_placement='ffn')

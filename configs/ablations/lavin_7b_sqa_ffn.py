# Ablation of LaVIN-7B SQA: the LLM adapters feed the FFN (on the ffn_norm output) instead of the
# attention. Same parameter count as LaVIN-7B.
_base_ = ['../lavin_7b_sqa.py']

model = dict(llm_adapter_placement='ffn')

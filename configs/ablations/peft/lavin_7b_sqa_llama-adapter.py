# PEFT comparison on LaVIN-7B SQA: LLaMA-Adapter v1's zero-gated prefix (Zhang et al., 2023:
# 10 prefix tokens in the top 30 of 32 layers) in place of the LLM's MMA adapters.
# 2,388,366 trainable parameters.
_base_ = ['../../lavin_7b_sqa.py']

model = dict(llm_adapter=dict(_delete_=True, type='LLaMAAdapterPrefix', length=10),
             llm_adapter_placement='prefix:30')

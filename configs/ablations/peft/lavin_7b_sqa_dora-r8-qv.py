# PEFT comparison on LaVIN-7B SQA: DoRA (Liu et al., 2024; LoRA r=8 on q,v plus a learned
# magnitude per output row) in place of the LLM's MMA adapters. 5,615,984 trainable parameters.
_base_ = ['../../lavin_7b_sqa.py']

model = dict(llm_adapter=dict(_delete_=True, type='DoRA', rank=8, alpha=16, dropout=0.05),
             llm_adapter_placement='linear:q,v')

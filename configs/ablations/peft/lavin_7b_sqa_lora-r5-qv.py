# PEFT comparison on LaVIN-7B SQA, budget-matched: LoRA on q,v with the rank whose trainable count
# is nearest MMA's 3,781,296 (r=5: 3,780,976; r=4 or 6 miss by ~524k). Otherwise as
# lora-r8-qv (alpha = 2r).
_base_ = ['../../lavin_7b_sqa.py']

model = dict(llm_adapter=dict(_delete_=True, type='LoRA', rank=5, alpha=10, dropout=0.05),
             llm_adapter_placement='linear:q,v')

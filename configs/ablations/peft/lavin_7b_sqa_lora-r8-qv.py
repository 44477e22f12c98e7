# PEFT comparison on LaVIN-7B SQA: the LLM's MMA adapters replaced by LoRA (r=8, alpha=16) on the
# query and value projections of every block (Hu et al., 2021); the vision side (routed ViT
# adapters, projector), data and schedule as in lavin_7b_sqa.py. 5,353,840 trainable parameters.
_base_ = ['../../lavin_7b_sqa.py']

model = dict(llm_adapter=dict(_delete_=True, type='LoRA', rank=8, alpha=16, dropout=0.05),
             llm_adapter_placement='linear:q,v')

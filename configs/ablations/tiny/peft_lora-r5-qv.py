# Tiny demo, PEFT comparison at MMA's budget: LoRA r=5 on q,v (19,380 trainable parameters vs the
# demo's 19,420).
_base_ = ['../../lavin_tiny_demo.py']

model = dict(llm_adapter=dict(_delete_=True, type='LoRA', rank=5, alpha=10, dropout=0.05),
             llm_adapter_placement='linear:q,v')

# Tiny demo, PEFT comparison near MMA's budget: DoRA r=5 on q,v (20,404 trainable parameters).
_base_ = ['../../lavin_tiny_demo.py']

model = dict(llm_adapter=dict(_delete_=True, type='DoRA', rank=5, alpha=10, dropout=0.05),
             llm_adapter_placement='linear:q,v')

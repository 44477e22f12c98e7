# Tiny demo, PEFT comparison: LoRA r=8 on q,v in place of the LLM's MMA adapters (the ViT side as
# in the demo). Shorten with --cfg-options, e.g. train_cfg.max_epochs=1 (see tools/sweep.py).
_base_ = ['../../lavin_tiny_demo.py']

model = dict(llm_adapter=dict(_delete_=True, type='LoRA', rank=8, alpha=16, dropout=0.05),
             llm_adapter_placement='linear:q,v')

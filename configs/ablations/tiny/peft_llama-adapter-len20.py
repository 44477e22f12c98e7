# Tiny demo, PEFT comparison at MMA's budget: LLaMA-Adapter's gated prefix, 20 tokens in all 4
# layers (19,384 trainable parameters).
_base_ = ['../../lavin_tiny_demo.py']

model = dict(llm_adapter=dict(_delete_=True, type='LLaMAAdapterPrefix', length=20),
             llm_adapter_placement='prefix:4')

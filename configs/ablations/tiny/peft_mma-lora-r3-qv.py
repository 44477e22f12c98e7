# Tiny demo: MMA over LoRA experts (RoutedLoRA, r=3, two experts) on q,v near MMA's budget
# (20,420 trainable parameters).
_base_ = ['../../lavin_tiny_demo.py']

model = dict(llm_adapter=dict(_delete_=True, type='RoutedLoRA', rank=3, alpha=6, dropout=0.05,
                              num_experts=2, router=dict(type='ModalityRouter', temperature=10.0)),
             llm_adapter_placement='linear:q,v')

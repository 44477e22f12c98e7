# Mixture-of-Modality Adaptation over LoRA experts on LaVIN-7B SQA: RoutedLoRA (one shared A,
# two routed B, r=8) on q,v, routed by the modality token as LaVIN's adapters are (temperature
# 10); the vision side as in lavin_7b_sqa.py. 7,975,408 trainable parameters.
_base_ = ['../../lavin_7b_sqa.py']

model = dict(llm_adapter=dict(_delete_=True, type='RoutedLoRA', rank=8, alpha=16, dropout=0.05,
                              num_experts=2, router=dict(type='ModalityRouter', temperature=10.0)),
             llm_adapter_placement='linear:q,v')

# PEFT comparison on LaVIN-7B SQA: IA3 (Liu et al., 2022) in place of the LLM's MMA adapters:
# learned scalings of the keys, values (k, v outputs) and the FFN's inner activation (the input
# of the down projection), PEFT's default targets for LLaMA. 1,773,936 trainable parameters.
_base_ = ['../../lavin_7b_sqa.py']

model = dict(llm_adapter=dict(_delete_=True, type='IA3', feedforward=('down', )),
             llm_adapter_placement='linear:k,v,down')

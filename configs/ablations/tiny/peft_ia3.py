# Tiny demo, PEFT comparison: IA3 on keys, values and the FFN activation (11,572 trainable
# parameters: IA3 has no size knob to reach MMA's budget).
_base_ = ['../../lavin_tiny_demo.py']

model = dict(llm_adapter=dict(_delete_=True, type='IA3', feedforward=('down', )),
             llm_adapter_placement='linear:k,v,down')

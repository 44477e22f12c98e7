# Zero-shot MME (perception / cognition) of the LaVIN-13B chatbot.
_base_ = ['./_base_/models/lavin_13b.py', './_base_/datasets/mme.py']
default_scope = 'mma'
model = dict(tokenizer={{_base_.tokenizer}}, generation_cfg={{_base_.generation_cfg}})

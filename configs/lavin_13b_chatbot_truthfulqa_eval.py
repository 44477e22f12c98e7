# Zero-shot TruthfulQA (MC1/MC2) of the LaVIN-13B chatbot (adapters trained on Alpaca + LLaVA).
_base_ = ['./_base_/models/lavin_13b.py', './_base_/datasets/truthfulqa.py']
default_scope = 'mma'
model = dict(tokenizer={{_base_.tokenizer}})

# Evaluate LaVIN-13B on the ScienceQA test split.
_base_ = ['./_base_/models/lavin_13b.py', './_base_/datasets/scienceqa_test.py']
default_scope = 'mma'
model = dict(tokenizer={{_base_.tokenizer}}, generation_cfg={{_base_.generation_cfg}})

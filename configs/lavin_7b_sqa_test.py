# Evaluate LaVIN-7B on the ScienceQA test split:
#   python tools/test.py configs/lavin_7b_sqa_test.py work_dirs/lavin_7b_sqa/adapters.pth
_base_ = ['./_base_/models/lavin_7b.py', './_base_/datasets/scienceqa_test.py']
default_scope = 'mma'
model = dict(tokenizer={{_base_.tokenizer}}, generation_cfg={{_base_.generation_cfg}})

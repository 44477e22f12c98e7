# Evaluate a vqav2-fine-tuned LaVIN-7B:
#   python tools/test.py configs/lavin_7b_vqav2_eval.py ADAPTER_CHECKPOINT
_base_ = ['./_base_/models/lavin_7b.py', './_base_/datasets/vqav2.py']
default_scope = 'mma'
train_dataloader = None
model = dict(tokenizer={{_base_.tokenizer}}, generation_cfg={{_base_.generation_cfg}})

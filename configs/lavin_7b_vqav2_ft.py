# Fine-tune LaVIN-7B's adapters on the vqav2 train split (evaluation: lavin_7b_vqav2_eval.py).
_base_ = ['./_base_/models/lavin_7b.py', './_base_/datasets/vqav2.py',
          './_base_/schedules/finetune_adamw_cosine.py', './_base_/default_runtime.py']
default_scope = 'mma'
model = dict(tokenizer={{_base_.tokenizer}}, generation_cfg={{_base_.generation_cfg}})

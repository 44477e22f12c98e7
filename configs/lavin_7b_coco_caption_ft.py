# Fine-tune LaVIN-7B's adapters on the coco_caption train split (evaluation: lavin_7b_coco_caption_eval.py).
_base_ = ['./_base_/models/lavin_7b.py', './_base_/datasets/coco_caption.py',
          './_base_/schedules/finetune_adamw_cosine.py', './_base_/default_runtime.py']
default_scope = 'mma'
model = dict(tokenizer={{_base_.tokenizer}}, generation_cfg={{_base_.generation_cfg}})

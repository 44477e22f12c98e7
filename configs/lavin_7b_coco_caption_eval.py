# Evaluate a coco_caption-fine-tuned LaVIN-7B:
#   python tools/test.py configs/lavin_7b_coco_caption_eval.py ADAPTER_CHECKPOINT
_base_ = ['./_base_/models/lavin_7b.py', './_base_/datasets/coco_caption.py']
default_scope = 'mma'
train_dataloader = None
model = dict(tokenizer={{_base_.tokenizer}}, generation_cfg={{_base_.generation_cfg}})

# LaVIN-13B on ScienceQA (QCM-ALE), the original code's recipe: 20 epochs, effective
# batch 32 = 4 per GPU x 1 accumulation x 8 GPUs, lr = 1.125e-3, router temperature 5.
#   torchrun --nproc_per_node 8 tools/train.py configs/lavin_13b_sqa.py --launcher pytorch --amp
_base_ = [
    './_base_/models/lavin_13b.py', './_base_/datasets/scienceqa.py',
    './_base_/schedules/lavin_20e.py', './_base_/default_runtime.py'
]
default_scope = 'mma'

batch_size = 4
accumulative_counts = 1
num_gpus = 8
effective_batch = batch_size * accumulative_counts * num_gpus  # 32
base_lr = 9e-3
lr = base_lr * effective_batch / 256  # 1.125e-3

train_dataloader = dict(batch_size=batch_size)
optim_wrapper = dict(accumulative_counts=accumulative_counts, optimizer=dict(lr=lr))
# Evaluation with the same config: python tools/test.py CONFIG ADAPTER_CHECKPOINT
model = dict(llm=dict(gradient_checkpointing=False), tokenizer={{_base_.tokenizer}},
             generation_cfg={{_base_.generation_cfg}})

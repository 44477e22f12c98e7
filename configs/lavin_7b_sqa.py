# LaVIN-7B on ScienceQA (QCM-ALE), the original code's recipe: 20 epochs, effective
# batch 32 = 4 per GPU x 4 accumulation x 2 GPUs, lr = 9e-3 * 32 / 256 = 1.125e-3, 2 warmup epochs.
#   torchrun --nproc_per_node 2 tools/train.py configs/lavin_7b_sqa.py --launcher pytorch --amp
# On another GPU count keep the effective batch: e.g. 8 GPUs -> accumulative_counts=1.
_base_ = [
    './_base_/models/lavin_7b.py', './_base_/datasets/scienceqa.py',
    './_base_/schedules/lavin_20e.py', './_base_/default_runtime.py'
]
default_scope = 'mma'

batch_size = 4
accumulative_counts = 4
num_gpus = 2
effective_batch = batch_size * accumulative_counts * num_gpus  # 32
base_lr = 9e-3
lr = base_lr * effective_batch / 256  # 1.125e-3

train_dataloader = dict(batch_size=batch_size)
optim_wrapper = dict(accumulative_counts=accumulative_counts, optimizer=dict(lr=lr))
# Activation checkpointing: --cfg-options model.llm.gradient_checkpointing=True
# Evaluation with the same config: python tools/test.py CONFIG ADAPTER_CHECKPOINT
model = dict(llm=dict(gradient_checkpointing=False), tokenizer={{_base_.tokenizer}},
             generation_cfg={{_base_.generation_cfg}})

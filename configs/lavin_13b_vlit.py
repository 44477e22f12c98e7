# LaVIN-13B chatbot: vision-language instruction tuning on Alpaca-52k + LLaVA-Instruct-158k
# (original LaVIN scripts/vl_instruction_tuning_13b.sh): 15 epochs, warmup 0.2 epochs, effective
# batch 32 = 4 x 1 x 8 GPUs, lr = 1.125e-3, router temperature 5.
#   torchrun --nproc_per_node 8 tools/train.py configs/lavin_13b_vlit.py --launcher pytorch --amp
_base_ = [
    './_base_/models/lavin_13b.py', './_base_/datasets/instruction.py',
    './_base_/schedules/lavin_20e.py', './_base_/default_runtime.py'
]
default_scope = 'mma'

batch_size = 4
accumulative_counts = 1
num_gpus = 8
effective_batch = batch_size * accumulative_counts * num_gpus  # 32
base_lr = 9e-3
lr = base_lr * effective_batch / 256  # 1.125e-3
max_epochs = 15
warmup_epochs = 0.2

train_dataloader = dict(batch_size=batch_size)
optim_wrapper = dict(accumulative_counts=accumulative_counts, optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, end_factor=1.0, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=0.0, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
model = dict(llm=dict(gradient_checkpointing=False), tokenizer={{_base_.tokenizer}})

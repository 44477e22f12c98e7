# LaVIN-13B ScienceQA recipe under DeepSpeed ZeRO-2 (mmengine FlexibleRunner + DeepSpeedStrategy;
# CUDA + `pip install deepspeed`). ZeRO-3: zero_optimization.stage=3.
#   torchrun --nproc_per_node 8 tools/train.py configs/lavin_13b_sqa_deepspeed.py --launcher pytorch
# DeepSpeed does its own accumulation and averaging: keep gradient accumulation at 1 (8 GPUs x 4)
# so that mma's loop normalises each step by the global token count exactly.
_base_ = ['./lavin_13b_sqa.py']

runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    bf16=dict(enabled=True),
    zero_optimization=dict(stage=2, allgather_partitions=True, reduce_scatter=True,
                           allgather_bucket_size=int(5e8), reduce_bucket_size=int(5e8),
                           overlap_comm=True, contiguous_gradients=True),
    gradient_clipping=0.0,
    train_micro_batch_size_per_gpu=4,
    gradient_accumulation_steps=1,
)
optim_wrapper = dict(_delete_=True, type='DeepSpeedOptimWrapper',
                     optimizer=dict(type='AdamW', lr=1.125e-3, betas=(0.9, 0.95),
                                    weight_decay=0.02))

# Runtime shared by mma training configs.
default_scope = 'mma'
# mmengine's Runner, with the data pipeline's visual tokens per image taken from the model.
runner_type = 'MMARunner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # mmengine's CheckpointHook, saving atomically: a kill or a full disk during a save leaves
    # the previous checkpoint and `last_checkpoint` intact (mma/engine/atomic_checkpoint.py).
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
# Trainable-only checkpoints (frozen weights come from the model's own files), per-rank,
# per-iteration seeding (dropout differs between ranks; resume is bitwise reproducible), and a
# check that the data pipeline's tokenizer has the LLM's vocabulary, and the checks before the
# first step (every training image opens, over-long qids listed, a schedule that cannot train
# warned about: mma/engine/start_checks.py).
custom_hooks = [dict(type='TrainableCheckpointHook'), dict(type='PerIterationSeedHook'),
                dict(type='VocabCheckHook'), dict(type='StartChecksHook'),
                dict(type='GlobalLossLogHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
# find_unused_parameters: MMARunner takes it from the model (LaVIN.may_leave_parameters_unused:
# a batch without image samples leaves the ViT adapters and the projector unused on that rank).
model_wrapper_cfg = dict(type='MMDistributedDataParallel')
log_processor = dict(
    by_epoch=True,
    custom_cfg=[dict(data_src='nonfinite_steps', method_name='current'),
                dict(data_src='loss_tokens', method_name='current')])
# Logged scalars go to WORK_DIR/<timestamp>/vis_data/scalars.json (tools/analyze_logs.py plots
# them); --cfg-options visualizer.tensorboard=True also writes TensorBoard event files there
# (pip install tensorboard).
visualizer = dict(type='MMAVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                  tensorboard=False)
log_level = 'INFO'
load_from = None
resume = False
# The same seed on every rank, so that every rank builds the same model; PerIterationSeedHook
# gives each rank its own random stream during training.
randomness = dict(seed=0, diff_rank_seed=False, deterministic=False)

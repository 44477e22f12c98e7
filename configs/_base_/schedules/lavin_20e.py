# LaVIN ScienceQA schedule (the paper and its training scripts): AdamW (0.9, 0.95), weight decay
# 0.02 except on 1-d parameters and biases, per-iteration linear warmup for 2 epochs then
# half-cycle cosine to 0, 20 epochs. The leaf config sets lr = 9e-3 * effective batch / 256 and
# the accumulation count.
max_epochs = 20
warmup_epochs = 2

optim_wrapper = dict(
    type='SkipNonFiniteOptimWrapper',
    constructor='TrainableOptimWrapperConstructor',
    accumulative_counts=1,
    optimizer=dict(type='AdamW', lr=1.125e-3, betas=(0.9, 0.95), weight_decay=0.02),
    paramwise_cfg=dict(bias_decay_mult=0.0, norm_decay_mult=0.0, flat_decay_mult=0.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, end_factor=1.0, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=0.0, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='TokenMeanEpochBasedTrainLoop', max_epochs=max_epochs)

# Fine-tuning schedule (COCO caption, VQAv2): the LaVIN recipe of lavin_20e.py — token-mean loss
# over the whole optimizer step, non-finite steps skipped, AdamW (0.9, 0.95), weight decay 0.02
# off biases and 1-d parameters, lr 9e-3 * 32 / 256 — over 5 epochs, 1 of per-iteration warmup,
# then half-cycle cosine to 0.
_base_ = ['./lavin_20e.py']

max_epochs = 5
warmup_epochs = 1
optim_wrapper = dict(optimizer=dict(lr=9e-3 * 32 / 256))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, end_factor=1.0, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=0.0, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs + 1)

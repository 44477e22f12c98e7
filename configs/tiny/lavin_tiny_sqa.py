# A tiny LaVIN trained on a tiny ScienceQA-layout data set: runs on CPU in seconds.
#   python -c "import mma.toy as t; t.make_tiny_scienceqa('work_dirs/tiny_sqa')"
#   python tools/train.py configs/tiny/lavin_tiny_sqa.py --work-dir work_dirs/tiny
#   python tools/test.py configs/tiny/lavin_tiny_sqa.py work_dirs/tiny/epoch_6.pth
# Paths: --cfg-options train_dataloader.dataset.data_root=DIR \
#            test_dataloader.dataset.data_root=DIR model.tokenizer.model_path=DIR/tokenizer.model
#        (the pipelines take the tokenizer, image size and visual tokens from the model)
_base_ = [
    '../_base_/models/lavin_tiny.py', '../_base_/datasets/scienceqa.py',
    '../_base_/schedules/lavin_20e.py', '../_base_/default_runtime.py'
]
default_scope = 'mma'

data_root = 'work_dirs/tiny_sqa'
tokenizer_path = data_root + '/tokenizer.model'
vocab_size = 512  # must equal the tokenizer's
batch_size = 4
accumulative_counts = 1
max_epochs = 6
warmup_epochs = 1
lr = 1e-2

tokenizer = dict(type='AutoTokenizer', model_path=tokenizer_path)
model = dict(llm=dict(vocab_size=vocab_size),
             llm_adapter=dict(dropout=0.0), vit_adapter=dict(dropout=0.0),
             tokenizer=tokenizer, generation_cfg={{_base_.generation_cfg}})
train_pipeline = [
    dict(type='LoadLaVINImage'),
    dict(type='TokenizeForLaVIN', max_len=512),
]
train_dataloader = dict(
    batch_size=batch_size, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
test_dataloader = dict(
    num_workers=0,
    dataset=dict(data_root=data_root,
                 pipeline=[train_pipeline[0], dict(train_pipeline[1], with_answer=False)]))
optim_wrapper = dict(accumulative_counts=accumulative_counts, optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, end_factor=1.0, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=0.0, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=2))

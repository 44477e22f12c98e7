# ScienceQA training data (official layout) with LaVIN's QCM-ALE prompts.
# Override the paths with --cfg-options, e.g.
#   train_dataloader.dataset.data_root=/data/scienceqa
#   train_dataloader.dataset.pipeline.1.tokenizer.model_path=/weights/llama/tokenizer.model
data_root = 'data/scienceqa'
tokenizer_path = 'data/weights/llama/tokenizer.model'
prompt_format = 'QCM-ALE'
max_len = 512            # positions the model sees: modality token + text + visual tokens
num_visual_tokens = 6
image_size = 224

train_pipeline = [
    # ImageNet mean/std, as the reference (not CLIP's).
    dict(type='LoadLaVINImage', size=image_size, mean=(0.485, 0.456, 0.406),
         std=(0.229, 0.224, 0.225)),
    dict(type='TokenizeForLaVIN',
         tokenizer=dict(type='SentencePieceTokenizer', model_path=tokenizer_path),
         max_len=max_len, num_visual_tokens=num_visual_tokens, overlong='truncate_prompt',
         image_prefix='Image: ', text_prefix='Image: N/A'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='mma_collate'),
    dataset=dict(type='ScienceQADataset', data_root=data_root, split='train',
                 prompt_format=prompt_format, use_caption=False, pipeline=train_pipeline),
)

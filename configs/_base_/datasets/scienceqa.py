# ScienceQA (official layout) with LaVIN's QCM-ALE prompts: training on `train`, evaluation
# (tools/test.py) on `test` with the same dataset class, prompt format and pipeline, the text
# stopping after "Response:" (with_answer=False).
# Override the paths with --cfg-options, e.g.
#   train_dataloader.dataset.data_root=/data/scienceqa   (and test_dataloader.dataset.data_root)
#   model.tokenizer.model_path=/weights/llama/tokenizer.model
# The tokenizer is stated once, in the model; the pipeline takes it (and the visual tokens per
# image) from the model. AutoTokenizer takes tokenizer.model (sentencepiece), tokenizer.json (HF:
# LLaMA-3, Qwen2.5) or the weights folder holding one.
data_root = 'data/scienceqa'
tokenizer_path = 'data/weights/llama/tokenizer.model'
prompt_format = 'QCM-ALE'
max_len = 512            # positions the model sees: modality token + text + visual tokens

train_pipeline = [
    # Image size: the vision encoder's. ImageNet mean/std, as the reference (not CLIP's).
    dict(type='LoadLaVINImage', mean=(0.485, 0.456, 0.406),
         std=(0.229, 0.224, 0.225)),
    dict(type='TokenizeForLaVIN',  # tokenizer and visual tokens: from the model
         max_len=max_len, overlong='truncate_prompt',
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

test_pipeline = [train_pipeline[0], dict(train_pipeline[1], with_answer=False)]
test_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='mma_collate'),
    dataset=dict(type='ScienceQADataset', data_root=data_root, split='test',
                 prompt_format=prompt_format, use_caption=False, test_mode=True,
                 pipeline=test_pipeline),
)
test_evaluator = dict(type='ScienceQAMetric')
test_cfg = dict(type='TestLoop')

# The leaf config puts these into its model: {{_base_.tokenizer}}, {{_base_.generation_cfg}}.
# Greedy decoding that stops as soon as "The answer is X." is decided (answer-aware early stop).
tokenizer = dict(type='AutoTokenizer', model_path=tokenizer_path)
generation_cfg = dict(max_new_tokens=64, temperature=0.0, stop_pattern=r'The answer is ([A-Z]).')

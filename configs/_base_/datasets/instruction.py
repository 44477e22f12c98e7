# LaVIN chatbot instruction data: Alpaca-52k (text-only) + LLaVA-Instruct-158k (COCO images),
# each turn as "Instruction: {q}\nResponse:" -> answer. Override the paths with --cfg-options:
#   train_dataloader.dataset.datasets.0.ann_file=/data/alpaca_data.json
#   train_dataloader.dataset.datasets.1.ann_file=... (.2, .3: the other LLaVA files)
#   train_dataloader.dataset.datasets.1.image_root=/data/coco/train2014   (and .2, .3)
#   model.tokenizer.model_path=/weights/tokenizer.model   (the pipelines take the model's)
# (LaVIN's own prepared file works too: dict(type='LaVINInstructDataset', ann_file='all_data.json',
#  sqa_image_root=..., coco_image_root=..., pipeline=train_pipeline).)
data_root = 'data/instruction'
coco_root = 'data/coco/train2014'
tokenizer_path = 'data/weights/llama/tokenizer.model'
max_len = 512

train_pipeline = [
    dict(type='LoadLaVINImage', mean=(0.485, 0.456, 0.406),
         std=(0.229, 0.224, 0.225)),
    dict(type='TokenizeForLaVIN',  # tokenizer and visual tokens: from the model
         max_len=max_len, overlong='truncate_prompt',
         image_prefix='Image: ', text_prefix='Image: N/A'),
]
# The leaf config puts this into its model: {{_base_.tokenizer}}.
tokenizer = dict(type='AutoTokenizer', model_path=tokenizer_path)
_llava = dict(type='LLaVAInstructDataset', data_root=data_root, image_root=coco_root,
              pipeline=train_pipeline)
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='mma_collate'),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(type='AlpacaDataset', data_root=data_root, ann_file='alpaca_data.json',
             pipeline=train_pipeline),
        dict(_llava, ann_file='complex_reasoning_77k.json'),
        dict(_llava, ann_file='detail_23k.json'),
        dict(_llava, ann_file='conversation_58k.json'),
    ]),
)

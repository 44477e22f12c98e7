# COCO captions, Karpathy split: data/coco/dataset_coco.json + data/coco/{train2014,val2014}/.
coco_root = 'data/coco'
tokenizer_file = 'data/weights/llama/tokenizer.model'

# The leaf config puts these into its model: {{_base_.tokenizer}}, {{_base_.generation_cfg}};
# the dataset takes the tokenizer, image size and visual tokens from the model.
tokenizer = dict(type='AutoTokenizer', model_path=tokenizer_file)
generation_cfg = dict(max_new_tokens=30, temperature=0.0, stop_strings=['\n'])
train_dataloader = dict(
    batch_size=4, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='mma_collate'),
    dataset=dict(type='COCOCaptionDataset', data_root=coco_root,
                 split='train', with_answer=True))
test_dataloader = dict(
    batch_size=8, num_workers=2, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='mma_collate'),
    dataset=dict(type='COCOCaptionDataset', data_root=coco_root,
                 split='test'))
test_evaluator = dict(type='COCOCaptionMetric')
test_cfg = dict(type='TestLoop')

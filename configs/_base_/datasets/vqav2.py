# VQAv2: data/vqav2/v2_OpenEnded_mscoco_{train,val}2014_questions.json,
# v2_mscoco_{train,val}2014_annotations.json, {train,val}2014/COCO_*_{image_id:012d}.jpg.
vqa_root = 'data/vqav2'
tokenizer_file = 'data/weights/llama/tokenizer.model'

# The leaf config puts these into its model: {{_base_.tokenizer}}, {{_base_.generation_cfg}};
# the dataset takes the tokenizer, image size and visual tokens from the model.
tokenizer = dict(type='AutoTokenizer', model_path=tokenizer_file)
generation_cfg = dict(max_new_tokens=10, temperature=0.0, stop_strings=['\n'])
train_dataloader = dict(
    batch_size=4, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='mma_collate'),
    dataset=dict(type='VQAv2Dataset', data_root=vqa_root,
                 split='train', with_answer=True))
test_dataloader = dict(
    batch_size=8, num_workers=2, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='mma_collate'),
    dataset=dict(type='VQAv2Dataset', data_root=vqa_root,
                 split='val'))
test_evaluator = dict(type='VQAv2Metric')
test_cfg = dict(type='TestLoop')

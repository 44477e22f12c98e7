# ScienceQA test split for evaluation (tools/test.py): QCM prompt, greedy decoding that stops as
# soon as "The answer is X." is decided, the official accuracy breakdown.
sqa_root = 'data/scienceqa'
tokenizer_file = 'data/weights/llama/tokenizer.model'

# The leaf config puts these into its model: {{_base_.tokenizer}}, {{_base_.generation_cfg}}.
tokenizer = dict(type='SentencePieceTokenizer', model_path=tokenizer_file)
generation_cfg = dict(max_new_tokens=64, temperature=0.0,
                      stop_pattern=r'The answer is ([A-Z]).')
test_dataloader = dict(
    batch_size=8, num_workers=2, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='mma.collate_prompts'),
    dataset=dict(type='ScienceQAEvalDataset', data_root=sqa_root, tokenizer=tokenizer_file,
                 split='test', image_size=224))
test_evaluator = dict(type='ScienceQAMetric')
test_cfg = dict(type='TestLoop')

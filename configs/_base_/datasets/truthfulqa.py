# TruthfulQA multiple choice, zero-shot: data/truthfulqa/mc_task.json; choices scored by
# log-likelihood (no generation).
tokenizer_file = 'data/weights/llama/tokenizer.model'

# The leaf config puts this into its model: {{_base_.tokenizer}}.
tokenizer = dict(type='AutoTokenizer', model_path=tokenizer_file)
test_dataloader = dict(
    batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='mma_collate'),
    dataset=dict(type='TruthfulQADataset', data_root='data/truthfulqa'))  # tokenizer: the model's
test_evaluator = dict(type='TruthfulQAMetric')
test_cfg = dict(type='TestLoop')

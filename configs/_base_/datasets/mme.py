# MME, zero-shot: data/MME_Benchmark_release_version/{subtask}/... (see docs/evaluation.md).
tokenizer_file = 'data/weights/llama/tokenizer.model'

# The leaf config puts these into its model: {{_base_.tokenizer}}, {{_base_.generation_cfg}};
# the dataset takes the tokenizer, image size and visual tokens from the model.
tokenizer = dict(type='AutoTokenizer', model_path=tokenizer_file)
generation_cfg = dict(max_new_tokens=16, temperature=0.0, stop_strings=['\n'])
test_dataloader = dict(
    batch_size=8, num_workers=2, sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='mma_collate'),
    dataset=dict(type='MMEDataset', data_root='data/MME_Benchmark_release_version'))
test_evaluator = dict(type='MMEMetric')
test_cfg = dict(type='TestLoop')

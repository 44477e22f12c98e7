# Tiny demo with a Qwen2.5-7B-style backbone: grouped-query attention (2 KV heads), q/k/v biases,
# rope_theta 1e6, untied input/output embeddings (as the 7B; the tied small sizes are tested
# against transformers in tests/llms/test_llm_families.py), and an HF tokenizer.json (byte-level
# BPE, no BOS).
#   python tools/demo.py --config configs/ablations/tiny/lavin_tiny_demo_qwen2.5.py \
#       --work-dir work_dirs/lavin_tiny_demo_qwen2.5     # pretrains its own tiny LLM
_base_ = ['../../lavin_tiny_demo.py']

assets = 'work_dirs/lavin_tiny_demo_qwen2.5/assets'
llama_dir = assets + '/llama'
tokenizer_path = llama_dir + '/tokenizer.json'
tokenizer_style = 'qwen2.5'
llm_params = dict(dim=128, n_layers=4, n_heads=4, n_kv_heads=2, multiple_of=32, vocab_size=512,
                  max_seq_len=256, qkv_bias=True, tie_embeddings=False, rope_theta=1e6)
tokenizer = dict(type='AutoTokenizer', model_path=tokenizer_path)
model = dict(llm=dict(_delete_=True, type='LLaMA', checkpoint=llama_dir, **llm_params),
             vision=dict(pretrained=assets + '/vit.pt'), tokenizer=tokenizer)
train_dataloader = dict(dataset=dict(data_root=assets + '/scienceqa'))
test_dataloader = dict(dataset=dict(data_root=assets + '/scienceqa'))

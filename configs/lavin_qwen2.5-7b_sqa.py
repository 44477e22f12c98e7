# LaVIN on ScienceQA (QCM-ALE) with Qwen2.5-7B (GQA, qkv bias, rope_theta 1e6, dim 3584 x 28 layers; HF folder with tokenizer.json):
# LaVIN-7B's recipe, adapters, ViT and data with another LLM. 3,099,784 trainable parameters.
# The folder states the sizes (the preset only names them for building without the files, and is
# checked against the folder); the tokenizer is the folder's own (tokenizer.model or
# tokenizer.json). See docs/weights.md.
#   python tools/train.py configs/lavin_qwen2.5-7b_sqa.py --cfg-options train_dataloader.dataset.data_root=...
_base_ = ['./lavin_7b_sqa.py']

weights = 'data/weights/Qwen2.5-7B'
tokenizer = dict(type='AutoTokenizer', model_path=weights)
model = dict(
    llm=dict(_delete_=True, type='LLaMA', preset='qwen2.5-7b', checkpoint=weights, max_seq_len=512),
    tokenizer=tokenizer)

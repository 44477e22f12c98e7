# LaVIN on ScienceQA (QCM-ALE) with Mistral-7B v0.3 (GQA, rope_theta 1e6; HF folder):
# LaVIN-7B's recipe, adapters, ViT and data with another LLM. 3,781,296 trainable parameters.
# The folder states the sizes (the preset only names them for building without the files, and is
# checked against the folder); the tokenizer is the folder's own (tokenizer.model or
# tokenizer.json). See docs/weights.md.
#   python tools/train.py configs/lavin_mistral-7b_sqa.py --cfg-options train_dataloader.dataset.data_root=...
_base_ = ['./lavin_7b_sqa.py']

weights = 'data/weights/Mistral-7B-v0.3'
tokenizer = dict(type='AutoTokenizer', model_path=weights)
model = dict(
    llm=dict(_delete_=True, type='LLaMA', preset='mistral-7b-v0.3', checkpoint=weights, max_seq_len=512),
    tokenizer=tokenizer)

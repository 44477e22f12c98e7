# LaVIN on ScienceQA (QCM-ALE) with LLaMA-3.1-8B (GQA, llama3 RoPE scaling; HF folder with tokenizer.json, or Meta folder):
# LaVIN-7B's recipe, adapters, ViT and data with another LLM. 3,781,296 trainable parameters.
# The folder states the sizes (the preset only names them for building without the files, and is
# checked against the folder); the tokenizer is the folder's own (tokenizer.model or
# tokenizer.json). See docs/weights.md.
#   python tools/train.py configs/lavin_llama3.1-8b_sqa.py --cfg-options train_dataloader.dataset.data_root=...
_base_ = ['./lavin_7b_sqa.py']

weights = 'data/weights/Llama-3.1-8B'
tokenizer = dict(type='AutoTokenizer', model_path=weights)
model = dict(
    llm=dict(_delete_=True, type='LLaMA', preset='llama3.1-8b', checkpoint=weights, max_seq_len=512),
    tokenizer=tokenizer)

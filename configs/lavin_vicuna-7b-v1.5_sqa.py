# LaVIN on ScienceQA (QCM-ALE) with Vicuna-7B v1.5 (LLaMA-2 fine-tuned; HF folder with tokenizer.model):
# LaVIN-7B's recipe, adapters, ViT and data with another LLM. 3,781,296 trainable parameters.
# The folder states the sizes (the preset only names them for building without the files, and is
# checked against the folder); the tokenizer is the folder's own (tokenizer.model or
# tokenizer.json). See docs/weights.md.
#   python tools/train.py configs/lavin_vicuna-7b-v1.5_sqa.py --cfg-options train_dataloader.dataset.data_root=...
_base_ = ['./lavin_7b_sqa.py']

weights = 'data/weights/vicuna-7b-v1.5'
tokenizer = dict(type='AutoTokenizer', model_path=weights)
model = dict(
    llm=dict(_delete_=True, type='LLaMA', preset='vicuna-7b-v1.5', checkpoint=weights, max_seq_len=512),
    tokenizer=tokenizer)

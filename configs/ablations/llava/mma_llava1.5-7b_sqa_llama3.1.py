# MMA on LLaVA-1.5 (configs/mma_llava1.5-7b_sqa.py) with LLaMA-3.1-8B as the LLM instead of Vicuna-7B v1.5
# (its own tokenizer; sizes from its folder, the preset names them for building without it).
# LLaVA-1.5's tower still loads from its folder; its projector maps into Vicuna's embedding
# space, not this LLM's, so the projector starts from random here.
_base_ = ['../../mma_llava1.5-7b_sqa.py']

weights = 'data/weights/Llama-3.1-8B'
tokenizer = dict(type='AutoTokenizer', model_path=weights)
model = dict(llm=dict(preset='llama3.1-8b', checkpoint=weights),
             projector=dict(weights=None), tokenizer=tokenizer)

# MMA on LLaVA-1.5 (configs/mma_llava1.5-7b_sqa.py) with Qwen2.5-7B as the LLM instead of Vicuna-7B v1.5
# (its own tokenizer; sizes from its folder, the preset names them for building without it).
# LLaVA-1.5's tower still loads from its folder; its projector maps into Vicuna's embedding
# space, not this LLM's, so the projector starts from random here.
_base_ = ['../../mma_llava1.5-7b_sqa.py']

weights = 'data/weights/Qwen2.5-7B'
tokenizer = dict(type='AutoTokenizer', model_path=weights)
model = dict(llm=dict(preset='qwen2.5-7b', checkpoint=weights),
             projector=dict(weights=None), tokenizer=tokenizer)

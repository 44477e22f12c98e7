# LaVIN-13B: as LaVIN-7B on LLaMA-13B, router temperature 5. 5,390,080 trainable parameters.
_base_ = ['./lavin_7b.py']

llama_dir = 'data/weights/llama/13B'
temperature = 5.0

model = dict(
    llm=dict(preset='llama-13b', checkpoint=llama_dir),
    llm_adapter=dict(router=dict(temperature=temperature)),
    vit_adapter=dict(router=dict(temperature=temperature)),
)

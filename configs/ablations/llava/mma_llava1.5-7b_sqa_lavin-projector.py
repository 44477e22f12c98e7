# MMA on LLaVA-1.5 (configs/mma_llava1.5-7b_sqa.py) with LaVIN's projector (Linear-SiLU-Linear,
# hidden 128) instead of LLaVA-1.5's MLP (Linear-GELU-Linear, hidden 4096).
_base_ = ['../../mma_llava1.5-7b_sqa.py']

model = dict(projector=dict(_delete_=True, type='LaVINProjector', hidden=128))

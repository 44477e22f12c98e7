# The paper's second ablation row, "+ image tokens" (86.32): plain RepAdapters in the LLM, visual
# tokens from the frozen ViT (no ViT adapters) through the projector, no router.
_base_ = ['./lavin_7b_sqa_no-router.py']

model = dict(vit_adapter=None)

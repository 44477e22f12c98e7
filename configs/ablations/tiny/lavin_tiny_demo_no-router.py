# Tiny demo ablation: plain RepAdapters (no modality router) in the LLM and the ViT.
# Shorten with --cfg-options, e.g. train_cfg.max_epochs=1 (see tools/sweep.py).
_base_ = ['../../lavin_tiny_demo.py']

adapter = dict(type='RepAdapter', hidden_dim=8, groups=2, scale=1.0, dropout=0.1)
model = dict(llm_adapter=dict(_delete_=True, **adapter),
             vit_adapter=dict(_delete_=True, **adapter))

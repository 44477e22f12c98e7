# A tiny LaVIN for tests and the CPU demo: LLaMA dim 64 x 2 layers, a 2-block ViT of width 64.
model = dict(
    type='LaVIN',
    llm=dict(type='LLaMA', preset='tiny'),
    vision=dict(type='CLIPViT', model_name=None, quick_gelu=True, feature_every=1,
                vision_cfg=dict(image_size=32, patch_size=8, width=64, head_width=16, layers=2,
                                mlp_ratio=4.0, embed_dim=32)),
    llm_adapter=dict(type='RoutedRepAdapter', hidden_dim=8, groups=2, scale=1.0, dropout=0.1,
                     router=dict(type='ModalityRouter', temperature=10.0)),
    llm_adapter_placement='attn',
    vit_adapter=dict(type='RoutedRepAdapter', hidden_dim=8, groups=2, scale=1.0, dropout=0.1,
                     router=dict(type='ModalityRouter', temperature=10.0)),
    vit_adapter_placement='attn',
    projector=dict(type='LaVINProjector', hidden=16),
)

# LaVIN-7B (the paper: 3.8M trainable parameters): LLaMA-7B + CLIP ViT-L/14 (OpenAI, QuickGELU),
# routed RepAdapters (dim 8, 2 groups, scale 1, dropout 0.1) before the attention of every LLaMA
# and ViT block,
# router temperature 10, 6 visual tokens, projector hidden 128. 3,781,296 trainable parameters.
llama_dir = 'data/weights/llama/7B'
clip_file = 'data/weights/clip/ViT-L-14.pt'
temperature = 10.0

model = dict(
    type='LaVIN',
    llm=dict(type='LLaMA', preset='llama-7b', checkpoint=llama_dir, max_seq_len=512),
    vision=dict(type='CLIPViT', model_name='ViT-L-14-quickgelu', pretrained=clip_file,
                feature_every=4),
    llm_adapter=dict(type='RoutedRepAdapter', hidden_dim=8, groups=2, scale=1.0, dropout=0.1,
                     router=dict(type='ModalityRouter', temperature=temperature)),
    llm_adapter_placement='attn',
    vit_adapter=dict(type='RoutedRepAdapter', hidden_dim=8, groups=2, scale=1.0, dropout=0.1,
                     router=dict(type='ModalityRouter', temperature=temperature)),
    vit_adapter_placement='attn',
    projector=dict(type='LaVINProjector', hidden=128),
)

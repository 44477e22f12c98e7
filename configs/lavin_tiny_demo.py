# The embedded CPU demo (tools/demo.py): LaVIN on a synthetic ScienceQA-format data set whose image
# questions can only be answered from the picture and text questions only from the text. The
# backbones are a tiny LLaMA (dim 128 x 4 layers) and a tiny ViT (width 64 x 2 blocks, 32 px),
# both pretrained by tools/demo.py and then frozen; only the MMA adapters train.
#   python tools/demo.py                      # prepares assets in work_dirs/, trains, evaluates
#   python tools/train.py configs/lavin_tiny_demo.py   # after the assets exist
_base_ = ['./_base_/datasets/scienceqa.py', './_base_/schedules/lavin_20e.py',
          './_base_/default_runtime.py']
default_scope = 'mma'

assets = 'work_dirs/lavin_tiny_demo/assets'
data_root = assets + '/scienceqa'
llama_dir = assets + '/llama'
tokenizer_path = llama_dir + '/tokenizer.model'
vit_file = assets + '/vit.pt'
vocab_size = 512
image_size = 32
prompt_format = 'QCM-ALE'
temperature = 10.0

# Backbone shapes, also used by tools/demo.py to pretrain them.
llm_params = dict(dim=128, n_layers=4, n_heads=4, multiple_of=32, vocab_size=vocab_size,
                  max_seq_len=256)
vision_cfg = dict(image_size=image_size, patch_size=8, width=64, head_width=16, layers=2,
                  mlp_ratio=4.0, embed_dim=32)

adapter = dict(type='RoutedRepAdapter', hidden_dim=8, groups=2, scale=1.0, dropout=0.1,
               router=dict(type='ModalityRouter', temperature=temperature))
model = dict(
    type='LaVIN',
    llm=dict(type='LLaMA', checkpoint=llama_dir, **llm_params),
    vision=dict(type='CLIPViT', model_name=None, vision_cfg=vision_cfg, quick_gelu=True,
                pretrained=vit_file, feature_every=1),
    llm_adapter=adapter,
    llm_adapter_placement='attn',
    vit_adapter=adapter,
    vit_adapter_placement='attn',
    projector=dict(type='LaVINProjector', hidden=32),
    tokenizer=dict(type='AutoTokenizer', model_path=tokenizer_path),
    generation_cfg=dict(max_new_tokens=64, temperature=0.0, stop_pattern=r'The answer is ([A-Z]).'),
)

# tokenizer and visual tokens per image (2 here): from the model. The image size is stated (it
# must be the ViT's) for the text-only ablation, whose model has no ViT but still loads images.
tokenize = dict(type='TokenizeForLaVIN', max_len=256)
load_image = dict(type='LoadLaVINImage', size=image_size)
batch_size = 16
max_epochs = 4
warmup_epochs = 1
lr = 9e-3 * batch_size / 256 * 4

train_dataloader = dict(
    batch_size=batch_size, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, split='train', prompt_format=prompt_format,
                 pipeline=[load_image, tokenize]))
test_dataloader = dict(
    batch_size=32, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='mma_collate'),
    dataset=dict(type='ScienceQADataset', data_root=data_root, split='test',
                 prompt_format=prompt_format, test_mode=True,
                 pipeline=[load_image, dict(tokenize, with_answer=False)]))
test_evaluator = dict(type='ScienceQAMetric')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(accumulative_counts=1, optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, end_factor=1.0, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=0.0, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
# A progress line every 50 iterations (1-2 per epoch); the scalars of every logged step also go
# to WORK_DIR/<timestamp>/vis_data/scalars.json.
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=1, max_keep_ckpts=1))

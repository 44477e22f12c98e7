# MMA on a LLaVA-1.5-style model, ScienceQA (QCM-ALE): Vicuna-7B v1.5 + CLIP ViT-L/14-336 patch
# tokens (the penultimate block's 576 tokens, CLS dropped, as LLaVA-1.5) + LLaVA-1.5's MLP projector
# (Linear-GELU-Linear) + MMA: routed adapters before the attention of every LLM and ViT block and
# the modality router. 24,080,934 trainable parameters (the MLP projector: 20,979,712 of them).
# Images: 336 px with CLIP's own normalisation (from the tower's config, not restated here).
# Prompt: LaVIN's sequence with LLaVA-1.5's "USER: " turn prefix before the image (LLaVA-1.5's
# "ASSISTANT:" answer cue is ScienceQA's "Response:" here, so that the answer parser is shared).
#   python tools/train.py configs/mma_llava1.5-7b_sqa.py --amp --cfg-options ...
_base_ = ['./lavin_7b_sqa.py']

weights = 'data/weights/vicuna-7b-v1.5'
# LLaVA-1.5's tower: an HF CLIP folder (openai/clip-vit-large-patch14-336) or an open_clip file
clip = 'data/weights/clip-vit-large-patch14-336'
max_len = 1024  # 576 visual tokens + ScienceQA's text
tokenizer = dict(type='AutoTokenizer', model_path=weights)
model = dict(
    llm=dict(_delete_=True, type='LLaMA', preset='vicuna-7b-v1.5', checkpoint=weights,
             max_seq_len=max_len),
    vision=dict(_delete_=True, type='CLIPViT', model_name='ViT-L-14-336-quickgelu',
                pretrained=clip, feature_type='patch', patch_layer=-2),
    projector=dict(_delete_=True, type='MLPProjector'),
    tokenizer=tokenizer)
load_image = dict(type='LoadLaVINImage', size=None, mean=None, std=None)  # the tower's
tokenize = dict(_base_.train_pipeline[1], max_len=max_len,
                image_prefix='USER: ', text_prefix='USER: Image: N/A')
train_dataloader = dict(dataset=dict(pipeline=[load_image, tokenize]))
test_dataloader = dict(dataset=dict(pipeline=[load_image, dict(tokenize, with_answer=False)]))

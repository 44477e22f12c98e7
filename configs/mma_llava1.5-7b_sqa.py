# MMA on LLaVA-1.5-7B, ScienceQA (QCM-ALE), starting from LLaVA-1.5: its LLM (Vicuna-7B v1.5 as
# LLaVA-1.5 fine-tuned it), its CLIP ViT-L/14-336 tower (the penultimate block's 576 patch tokens,
# CLS dropped) and its trained MLP projector (Linear-GELU-Linear) all load from one folder, and MMA
# adds routed adapters before the attention of every LLM and ViT block and the modality router.
# 24,080,934 trainable parameters (the MLP projector, starting from LLaVA's: 20,979,712 of them).
# Its input is LLaVA-1.5's: the Vicuna v1 conversation (prompt template 'llava_v1'), images padded
# to a square with the tower's mean colour, 336 px with CLIP's normalisation; the modality token
# is not in the sequence (the routers read it run alone, mma/models/modality.py), so with the
# zero-initialised adapters the starting model is LLaVA-1.5 itself.
# docs/weights.md, "Starting from LLaVA-1.5", has the three folder layouts this reads.
#   python tools/train.py configs/mma_llava1.5-7b_sqa.py --amp --cfg-options ...
_base_ = ['./lavin_7b_sqa.py']

# llava-hf/llava-1.5-7b-hf (either transformers layout); LLaVA's own release folder
# (liuhaotian/llava-v1.5-7b) works as well for llm/projector, with the CLIP folder as the tower.
weights = 'data/weights/llava-1.5-7b-hf'
max_len = 1024  # 576 visual tokens + ScienceQA's text
tokenizer = dict(type='AutoTokenizer', model_path=weights)
model = dict(
    llm=dict(_delete_=True, type='LLaMA', preset='vicuna-7b-v1.5', checkpoint=weights,
             max_seq_len=max_len),
    vision=dict(_delete_=True, type='CLIPViT', model_name='ViT-L-14-336-quickgelu',
                pretrained=weights, feature_type='patch', patch_layer=-2),
    projector=dict(_delete_=True, type='MLPProjector', weights=weights),
    modality_in_sequence=False,
    tokenizer=tokenizer)
load_image = dict(type='LoadLaVINImage', size=None, mean=None, std=None,  # the tower's
                  pad_to_square=True)
tokenize = dict(_base_.train_pipeline[1], max_len=max_len, template='llava_v1',
                image_prefix=None, text_prefix=None)
train_dataloader = dict(dataset=dict(pipeline=[load_image, tokenize]))
test_dataloader = dict(dataset=dict(pipeline=[load_image, dict(tokenize, with_answer=False)]))

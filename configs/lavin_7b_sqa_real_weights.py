# LaVIN-7B on ScienceQA (QCM-ALE) with real weights: the three paths below are all there is to set
# (docs/weights.md). Nothing is downloaded; the files are read by model.init_weights().
_base_ = ['./lavin_7b_sqa.py']

# Meta folder (params.json + consolidated.00.pth; tokenizer.model here or one level up) or an HF
# folder (config.json + *.safetensors / pytorch_model*.bin).
llama_dir = 'data/weights/llama/7B'
# OpenAI ViT-L/14 (TorchScript ViT-L-14.pt), or an open_clip state dict (.bin/.pth/.safetensors).
clip_file = 'data/weights/clip/ViT-L-14.pt'
# Optional trained adapters: a reference LaVIN checkpoint-N.pth, an mma adapter checkpoint
# (tools/convert_lavin_checkpoint.py) or an mmengine checkpoint; None trains from scratch.
lavin_checkpoint = None

model = dict(
    llm=dict(checkpoint=llama_dir),
    vision=dict(pretrained=clip_file),
    adapter_checkpoint=lavin_checkpoint,
)

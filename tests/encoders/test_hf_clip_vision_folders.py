"""HF ``CLIPVisionModel`` folders (LLaVA's tower: no projection) of both transformers layouts load
into ``CLIPViT`` and give transformers' patch features."""
import os

import pytest
import torch

import mma  # noqa: F401  (registers the encoders)

transformers = pytest.importorskip('transformers')

VISION = dict(image_size=32, patch_size=8, width=32, head_width=16, layers=3, mlp_ratio=2.0,
              embed_dim=32)


@pytest.fixture(scope='module')
def clip_folders(tmp_path_factory):
    from safetensors.torch import load_file, save_file
    root = tmp_path_factory.mktemp('clip')
    cfg = transformers.CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                        num_attention_heads=2, image_size=32, patch_size=8,
                                        hidden_act='quick_gelu')
    torch.manual_seed(0)
    model = transformers.CLIPVisionModel(cfg).eval()
    model.save_pretrained(str(root / 'tf5'))
    sd = load_file(str(root / 'tf5' / 'model.safetensors'))
    os.makedirs(root / 'tf4')
    # transformers 4 writes CLIPVisionModel's keys under vision_model.
    prefixed = {k if k.startswith('vision_model.') else 'vision_model.' + k: v
                for k, v in sd.items()}
    save_file(prefixed, str(root / 'tf4' / 'model.safetensors'))
    return model, root, sd


@pytest.mark.parametrize('layout', ['tf4', 'tf5'])
def test_clip_vision_model_folders_load(clip_folders, layout):
    model, root, sd = clip_folders
    assert layout == 'tf4' or not any(k.startswith('vision_model.') for k in sd)
    from mma.registry import ENCODERS
    vit = ENCODERS.build(dict(type='CLIPViT', model_name=None, vision_cfg=VISION, quick_gelu=True,
                              pretrained=str(root / layout), feature_type='patch',
                              patch_layer=-2))
    # the same tower, its sizes read from the folder's config.json
    assert str(ENCODERS.build(dict(type='CLIPViT', model_name=None, pretrained=str(root / 'tf5'),
                                   feature_type='patch')).tower) == str(vit.tower)
    vit.load_pretrained()
    assert vit.tower.proj is None  # the file has no projection
    torch.backends.mha.set_fastpath_enabled(False)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours = vit(images)
        theirs = model(pixel_values=images, output_hidden_states=True).hidden_states[-2][:, 1:]
    assert (ours - theirs).abs().max() <= 1e-5

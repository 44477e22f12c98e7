"""LLaVA-1.5's tower as LLaVA reads it: an HF CLIP folder, patch tokens of the penultimate layer."""
import pytest
import torch

from mma.encoders import CLIPViT

HF_VISION = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4,
                 image_size=32, patch_size=8, hidden_act='quick_gelu', projection_dim=32)
OPEN_CLIP_VISION = dict(image_size=32, patch_size=8, width=64, head_width=16, layers=3,
                        mlp_ratio=4.0, embed_dim=32)


@pytest.fixture(scope='module')
def hf_folder(tmp_path_factory):
    transformers = pytest.importorskip('transformers')
    torch.manual_seed(0)
    model = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(**HF_VISION))
    with torch.no_grad():  # no zero biases or unit norms: every tensor must land in its place
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    folder = tmp_path_factory.mktemp('clip-vit-tiny-patch8-32')
    model.save_pretrained(folder)
    return str(folder), model.eval()


@pytest.mark.parametrize('feature_type', ['patch', 'pooled'])
def test_hf_clip_folder_equals_transformers(hf_folder, feature_type):
    folder, hf = hf_folder
    enc = CLIPViT(model_name=None, vision_cfg=OPEN_CLIP_VISION, quick_gelu=True,
                  feature_type=feature_type, pretrained=folder).eval()
    enc.load_pretrained()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = hf(pixel_values=images, output_hidden_states=True)
        ours = enc(images)
    # LLaVA: image_forward_outs.hidden_states[-2][:, 1:] (mm_vision_select_layer=-2, 'patch')
    ref = out.hidden_states[-2][:, 1:] if feature_type == 'patch' else out.image_embeds[:, None]
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_empty_folder_is_named(tmp_path):
    enc = CLIPViT(model_name=None, vision_cfg=OPEN_CLIP_VISION, feature_type='patch')
    with pytest.raises(FileNotFoundError, match=f'CLIP weights folder {tmp_path} holds none of '
                       'model.safetensors'):
        enc.load_pretrained(str(tmp_path))

"""Linear slots in the vision towers: LoRA around the MLP of open_clip's own ViT, and around the
fused qkv, output and MLP projections of a timm tower (SigLIP-shaped); the tower's weights keep
their keys and load with adapters in, and folding equals the unmerged tower."""
import pytest
import torch

from mma.adapters import AdaptedModule, LoRA
from mma.encoders import CLIPViT
from mma.models.merge import fold_adapters
from mma.toy import TINY_SIGLIP_VISION_CFG, TINY_VISION_CFG, register_tiny_timm_models

CASES = {'native': (TINY_VISION_CFG, 'linear:up,down', ('c_fc', 'c_proj')),
         'timm': (TINY_SIGLIP_VISION_CFG, 'linear:qkv,o,up,down', ('qkv', 'proj', 'fc1', 'fc2'))}


@pytest.mark.parametrize('kind', list(CASES))
def test_lora_in_vit_linear_slots(kind, tmp_path):
    register_tiny_timm_models()
    cfg, placement, names = CASES[kind]
    torch.manual_seed(0)
    enc = CLIPViT(model_name=None, vision_cfg=dict(cfg), quick_gelu=True, feature_type='patch',
                  patch_layer=-1).eval()
    base_keys = set(enc.state_dict())
    path = tmp_path / 'tower.pth'
    torch.save({f'visual.{k}': v for k, v in enc.tower.state_dict().items()}, path)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = enc(images)
    slots = enc.adapter_slots(placement)
    assert sorted({s.name for s in slots}) == sorted(names)
    for s in slots:
        s.insert(LoRA(**s.sizes, rank=2, alpha=4))
        with torch.no_grad():
            s.adapter.lora_B.weight.normal_(0, 0.1)
    keys = set(enc.state_dict())
    assert base_keys <= keys and all('.adapter.lora_' in k for k in keys - base_keys)
    enc.pretrained = str(path)
    enc.load_pretrained()  # strict: adapter tensors are not tower weights
    with torch.no_grad():
        adapted = enc(images)
        assert (adapted - before).abs().max() > 1e-3
        fold_adapters(slots)
        assert not any(isinstance(m, AdaptedModule) for m in enc.modules())
        assert set(enc.state_dict()) == base_keys
        assert (enc(images) - adapted).abs().max() <= 1e-5


def test_packed_attention_of_open_clip_vit_is_refused():
    enc = CLIPViT(model_name=None, vision_cfg=dict(TINY_VISION_CFG), quick_gelu=True,
                  feature_every=1)
    with pytest.raises(ValueError, match='unknown'):
        enc.adapter_slots('linear:qkv')

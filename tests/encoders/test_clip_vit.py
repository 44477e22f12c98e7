import torch

from mma.adapters import RoutedRepAdapter
from mma.encoders import CLIPViT
from mma.toy import TINY_VISION_CFG


def _tiny(**kw):
    return CLIPViT(model_name=None, vision_cfg=dict(TINY_VISION_CFG, layers=4), quick_gelu=True,
                   **kw)


def test_cls_tokens_equal_open_clip_intermediates():
    torch.backends.mha.set_fastpath_enabled(False)
    enc = _tiny(feature_every=2).eval()
    assert enc.out_indices == (1, 3) and enc.num_features == 2
    images = torch.randn(3, 3, 32, 32)
    ours = enc(images)
    ref = enc.tower.forward_intermediates(images, indices=[1, 3], intermediates_only=True,
                                          output_fmt='NLC', output_extra_tokens=True)
    cls_ref = torch.stack([p[:, 0] for p in ref['image_intermediates_prefix']], dim=1)
    torch.testing.assert_close(ours, cls_ref, rtol=1e-6, atol=1e-6)


def test_adapter_insertion_keeps_keys_and_identity_at_init():
    torch.backends.mha.set_fastpath_enabled(False)
    enc = _tiny(feature_every=1).eval()
    images = torch.randn(2, 3, 32, 32)
    base = enc(images)
    original = {k: v.clone() for k, v in enc.tower.state_dict().items()}
    for slot in enc.adapter_slots('block'):
        slot.insert(RoutedRepAdapter(enc.width))
    torch.testing.assert_close(enc(images), base, rtol=0, atol=0)
    adapted = enc.tower.state_dict()
    assert set(original) <= set(adapted)
    assert {k for k in adapted if k not in original} == {
        k for k in adapted if '.adapter.' in k}
    # original open_clip keys load into the adapted tower (no adapter keys needed)
    perturbed = {k: v + 1 for k, v in original.items()}
    missing, unexpected = enc.tower.load_state_dict(perturbed, strict=False)
    assert not unexpected and all('.adapter.' in k for k in missing)
    assert torch.equal(enc.tower.transformer.resblocks[0].ln_1.module.weight,
                       perturbed['transformer.resblocks.0.ln_1.weight'])


def test_vit_l14_preset_on_meta():
    with torch.device('meta'):
        enc = CLIPViT('ViT-L-14-quickgelu')
    assert enc.out_indices == (3, 7, 11, 15, 19, 23) and enc.width == 1024
    assert all(p.is_meta for p in enc.parameters())

"""Any open_clip tower, loaded from a local file, gives the features of open_clip's own forward.

Each tiny tower is a registered open_clip model config (vision + a tiny text tower); open_clip
creates it, its full state dict goes to a file, open_clip loads that file into a second model
(the reference) and mma loads it into a ``CLIPViT`` built by the same model name. The reference
features are the block outputs seen by forward hooks during open_clip's ``encode_image``.
"""
import json

import open_clip
import pytest
import torch

from mma.encoders import CLIPViT
from mma.encoders.open_clip_towers import OPENAI_MEAN, OPENAI_STD
from mma.toy import (TINY_EVA_VISION_CFG, TINY_SIGLIP_VISION_CFG, TINY_VISION_CFG,
                         register_tiny_timm_models)

TEXT_CFG = dict(context_length=8, vocab_size=64, width=32, heads=2, layers=1)
NATIVE = dict(TINY_VISION_CFG, layers=3)
NATIVE_POOL = dict(NATIVE, no_ln_pre=True, attentional_pool=True, attn_pooler_queries=4,
                   attn_pooler_heads=2, pool_type='none')  # open_clip's own attention pool


@pytest.fixture(autouse=True)
def _no_mha_fastpath():
    """open_clip's blocks run nn.MultiheadAttention, whose fast path differs by ~1e-6."""
    torch.backends.mha.set_fastpath_enabled(False)
    yield
    torch.backends.mha.set_fastpath_enabled(True)


def _checkpoint(tmp_path, name: str, vision_cfg: dict):
    """Register ``name``, write a random open_clip checkpoint of it and return (path, the model
    open_clip loads from that file)."""
    register_tiny_timm_models()
    vision_cfg = dict(vision_cfg)
    cfg = dict(embed_dim=vision_cfg.pop('embed_dim'), quick_gelu=True, vision_cfg=vision_cfg,
               text_cfg=TEXT_CFG)
    (tmp_path / f'{name}.json').write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / f'{name}.json')
    torch.manual_seed(0)
    model = open_clip.create_model(name)
    with torch.no_grad():  # no zero biases or unit norms: every tensor must be loaded right
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    path = tmp_path / f'{name}.pt'
    torch.save(model.state_dict(), path)
    return str(path), open_clip.create_model(name, pretrained=str(path)).eval()


def _reference(model, images, indices):
    """open_clip's ``encode_image`` and the output of each block in ``indices`` during it."""
    visual = model.visual
    blocks = visual.trunk.blocks if hasattr(visual, 'trunk') else visual.transformer.resblocks
    seen = {}
    hooks = [blocks[i].register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, out))
             for i in indices]
    pooled = model.encode_image(images)
    for h in hooks:
        h.remove()
    return pooled, [seen[i] for i in indices]


def _mma(name, path, **kw) -> CLIPViT:
    torch.manual_seed(1)  # other random weights than the file's
    enc = CLIPViT(model_name=name, pretrained=path, **kw).eval()
    enc.load_pretrained()
    return enc


def _close(ours, ref):
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_cls_tower_lavin_features(tmp_path):
    path, ref = _checkpoint(tmp_path, 'mma-tiny-cls', NATIVE)
    enc = _mma('mma-tiny-cls', path, feature_type='cls', out_indices=[0, 2])
    images = torch.randn(2, 3, 32, 32)
    _, blocks = _reference(ref, images, [0, 2])
    assert enc.num_features == 2 and enc.width == 64
    _close(enc(images), torch.stack([b[:, 0] for b in blocks], dim=1))


def test_patch_tower_penultimate_block(tmp_path):
    path, ref = _checkpoint(tmp_path, 'mma-tiny-patch', NATIVE)
    enc = _mma('mma-tiny-patch', path, feature_type='patch')  # patch_layer=-2 as LLaVA-1.5
    images = torch.randn(2, 3, 32, 32)
    _, (block,) = _reference(ref, images, [1])
    assert enc.out_indices == (1, ) and enc.num_features == 16 and enc.width == 64
    _close(enc(images), block[:, 1:])
    assert len(enc.adapter_slots('attn')) == 2  # the last block is never run


def test_native_attention_pool_pooled_features(tmp_path):
    path, ref = _checkpoint(tmp_path, 'mma-tiny-attnpool', NATIVE_POOL)
    enc = _mma('mma-tiny-attnpool', path, feature_type='pooled')
    images = torch.randn(2, 3, 32, 32)
    pooled, _ = _reference(ref, images, [])
    assert enc.num_features == 4 and enc.width == 32 and pooled.shape == (2, 4, 32)
    _close(enc(images), pooled)


def test_siglip_style_tower_without_cls(tmp_path):
    path, ref = _checkpoint(tmp_path, 'mma-tiny-siglip', TINY_SIGLIP_VISION_CFG)
    images = torch.randn(2, 3, 32, 32)
    pooled, (block,) = _reference(ref, images, [1])
    patch = _mma('mma-tiny-siglip', path, feature_type='patch', patch_layer=1)
    assert not patch.has_cls and patch.num_features == 16 and patch.width == 64
    _close(patch(images), block)  # no class token to drop
    pool = _mma('mma-tiny-siglip', path, feature_type='pooled')
    assert pool.num_features == 1 and pool.width == 64
    _close(pool(images), pooled[:, None])
    with pytest.raises(ValueError, match="has no CLS token .*use feature_type='patch' .*'pooled'"):
        CLIPViT(model_name='mma-tiny-siglip', feature_type='cls')


def test_eva02_style_tower(tmp_path):
    path, ref = _checkpoint(tmp_path, 'mma-tiny-eva', TINY_EVA_VISION_CFG)
    images = torch.randn(2, 3, 32, 32)
    pooled, blocks = _reference(ref, images, [0, 1])
    cls = _mma('mma-tiny-eva', path, feature_type='cls', out_indices=[0, 1])
    _close(cls(images), torch.stack([b[:, 0] for b in blocks], dim=1))
    patch = _mma('mma-tiny-eva', path, feature_type='patch')
    _close(patch(images), blocks[1][:, 1:])
    pool = _mma('mma-tiny-eva', path, feature_type='pooled')
    assert pool.width == 32
    _close(pool(images), pooled[:, None])
    with torch.device('meta'):  # as mma.load_model builds: the rotary tables are not in files
        meta = CLIPViT(model_name='mma-tiny-eva', pretrained=path, feature_type='patch').eval()
    meta.load_pretrained()
    assert not any(t.is_meta for t in list(meta.parameters()) + list(meta.buffers()))
    _close(meta(images), blocks[1][:, 1:])


def test_timm_tower_adapters_run_and_keep_keys(tmp_path):
    from mma.adapters import RepAdapter
    register_tiny_timm_models()
    enc = CLIPViT(model_name=None, vision_cfg=TINY_EVA_VISION_CFG, feature_type='patch').eval()
    images = torch.randn(2, 3, 32, 32)
    base = enc(images)
    keys = set(enc.tower.state_dict())
    slots = enc.adapter_slots('block')
    assert [(s.name, s.folds_into) for s in slots[:2]] == [
        ('norm1', ('attn.q_proj', 'attn.k_proj', 'attn.v_proj')),
        ('norm2', ('mlp.fc1_g', 'mlp.fc1_x'))]
    for slot in slots:
        slot.insert(RepAdapter(enc.width, hidden_dim=4))
    _close(enc(images), base)  # zero-initialised adapters: identity
    assert keys <= set(enc.tower.state_dict())
    with torch.no_grad():
        for name, p in enc.named_parameters():
            if '.adapter.' in name:
                p.add_(torch.randn_like(p))
    assert (enc(images) - base).abs().max() > 1e-3  # the adapters are on the path


def test_load_errors_name_the_file(tmp_path):
    path, _ = _checkpoint(tmp_path, 'mma-tiny-siglip2', TINY_SIGLIP_VISION_CFG)
    with pytest.raises(ValueError, match=r'mma-tiny-siglip2.pt does not look like CLIP vision '
                       r'weights: expected keys like visual.conv1.weight \(the vision_cfg tower\), '
                       r"found e.g. \['trunk.attn_pool"):
        CLIPViT(model_name=None, vision_cfg=dict(TINY_VISION_CFG),
                feature_type='patch').load_pretrained(path)
    eva = CLIPViT(model_name=None, vision_cfg=TINY_EVA_VISION_CFG, feature_type='patch')
    with pytest.raises(KeyError, match=r'mma-tiny-siglip2.pt do not match the vision_cfg tower: '
                       r'missing .* unexpected .*trunk.attn_pool'):
        eva.load_pretrained(path)


@pytest.mark.parametrize('name,kw,width,num,size,mean', [
    ('ViT-L-14-336-quickgelu', dict(feature_type='patch'), 1024, 576, 336, OPENAI_MEAN),
    ('ViT-H-14', dict(feature_type='cls'), 1280, 8, 224, OPENAI_MEAN),
    ('EVA02-L-14-336', dict(feature_type='cls', feature_every=6), 1024, 4, 336, OPENAI_MEAN),
    ('ViT-B-16-SigLIP', dict(feature_type='patch'), 768, 196, 224, (0.5, 0.5, 0.5)),
    ('ViT-B-16-SigLIP', dict(feature_type='pooled'), 768, 1, 224, (0.5, 0.5, 0.5)),
])
def test_real_towers_on_meta(name, kw, width, num, size, mean):
    with torch.device('meta'):
        enc = CLIPViT(name, **kw)
    assert (enc.width, enc.num_features, enc.image_size) == (width, num, (size, size))
    assert enc.image_mean == mean
    assert enc.image_std == (OPENAI_STD if mean == OPENAI_MEAN else (0.5, 0.5, 0.5))
    if name == 'ViT-L-14-336-quickgelu':  # LLaVA-1.5: the penultimate of 24 blocks
        assert enc.out_indices == (22, )

"""CLIP ViT weights from local files in every supported format, and clear errors."""
import warnings

import pytest
import torch
from torch import nn

import mma
from mma.encoders import CLIPViT
from mma.toy import TINY_VISION_CFG, tiny_lavin_cfg


def _tower(pretrained=None, **kw) -> CLIPViT:
    cfg = dict(TINY_VISION_CFG)
    cfg.update(kw)
    return CLIPViT(model_name=None, vision_cfg=cfg, quick_gelu=True, feature_every=1,
                   pretrained=pretrained).eval()


@pytest.fixture
def ref() -> CLIPViT:
    torch.manual_seed(0)
    model = _tower()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


class _Node(nn.Module):
    """A scriptable holder: builds an OpenAI-style TorchScript archive of named parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _save_torchscript(sd: dict, path: str) -> None:
    root = _Node()
    for key, t in sd.items():
        *mods, leaf = key.split('.')
        m = root
        for name in mods:
            if not hasattr(m, name):
                m.add_module(name, _Node())
            m = getattr(m, name)
        m.register_parameter(leaf, nn.Parameter(t.detach().clone(), requires_grad=False))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        torch.jit.script(root).save(path)


def _openclip_full_state_dict(tower: CLIPViT) -> dict:
    """What open_clip / OpenAI full-model state dicts look like: visual.* plus the text tower."""
    sd = {f'visual.{k}': v for k, v in tower.tower.state_dict().items()}
    sd.update({'positional_embedding': torch.zeros(77, 32), 'token_embedding.weight':
               torch.zeros(10, 32), 'logit_scale': torch.ones(()), 'ln_final.weight':
               torch.ones(32)})
    return sd


def _check_equal(model: CLIPViT, ref: CLIPViT, cast=None) -> None:
    for k, v in ref.tower.state_dict().items():
        expected = cast(v) if cast else v
        assert torch.equal(model.tower.state_dict()[k], expected), k
    images = torch.randn(2, 3, 32, 32)
    if cast is None:
        with torch.no_grad():
            assert torch.equal(model(images), ref(images))


@pytest.mark.parametrize('fmt', ['openclip_pth', 'bare_bin', 'wrapped', 'safetensors',
                                 'torchscript_fp16'])
def test_load_each_format(tmp_path, ref, fmt):
    full = _openclip_full_state_dict(ref)
    cast = None
    if fmt == 'openclip_pth':
        path = str(tmp_path / 'open_clip_model.pth')
        torch.save(full, path)
    elif fmt == 'bare_bin':
        path = str(tmp_path / 'visual.bin')
        torch.save(ref.tower.state_dict(), path)
    elif fmt == 'wrapped':
        path = str(tmp_path / 'ckpt.pt')
        torch.save({'state_dict': full, 'epoch': 3}, path)
    elif fmt == 'safetensors':
        from safetensors.torch import save_file
        path = str(tmp_path / 'open_clip_model.safetensors')
        save_file({k: v.contiguous() for k, v in full.items()}, path)
    else:  # OpenAI ships fp16 TorchScript; mma casts to the tower's dtype
        path = str(tmp_path / 'ViT-L-14.pt')
        _save_torchscript({k: v.half() for k, v in full.items()}, path)
        cast = lambda v: v.half().float()  # noqa: E731
    model = _tower(pretrained=path)
    model.load_pretrained()
    _check_equal(model, ref, cast)


def test_meta_device_tower_and_adapters_keep_original_keys(tmp_path, ref):
    path = str(tmp_path / 'clip.pth')
    torch.save(_openclip_full_state_dict(ref), path)
    with torch.device('meta'):
        meta = _tower(pretrained=path)
    meta.load_pretrained()
    _check_equal(meta, ref)
    # With adapters inserted (ln_1 wrapped), the original open_clip keys still load.
    cfg = tiny_lavin_cfg()
    cfg['vision']['pretrained'] = path
    lavin = mma.build_model(cfg)
    adapter = {k: v.clone() for k, v in lavin.vision.state_dict().items() if '.adapter.' in k}
    assert 'tower.transformer.resblocks.0.ln_1.adapter.down.weight' in adapter
    lavin.vision.load_pretrained()
    own = lavin.vision.tower.state_dict()
    for k, v in ref.tower.state_dict().items():
        assert torch.equal(own[k], v), k
    for k, v in adapter.items():
        assert torch.equal(lavin.vision.state_dict()[k], v)


def test_errors_name_the_file_and_what_was_expected(tmp_path, ref):
    with pytest.raises(FileNotFoundError, match='CLIP weights file not found: .*nope.pt'):
        _tower(pretrained=str(tmp_path / 'nope.pt')).load_pretrained()
    garbage = tmp_path / 'garbage.pt'
    garbage.write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='could not read CLIP weights .*garbage.pt'):
        _tower().load_pretrained(str(garbage))
    torch.save({'layers.0.attention.wq.weight': torch.zeros(2, 2)}, tmp_path / 'llama.pth')
    with pytest.raises(ValueError, match=r'does not look like CLIP vision weights: expected keys '
                       r'like visual.conv1.weight'):
        _tower().load_pretrained(str(tmp_path / 'llama.pth'))
    torch.save(_openclip_full_state_dict(ref), tmp_path / 'clip.pth')
    with pytest.raises(KeyError, match=r'do not match .*unexpected 12 keys '
                       r"\['transformer.resblocks.1"):
        _tower(layers=1).load_pretrained(str(tmp_path / 'clip.pth'))
    with pytest.raises(ValueError, match=r'shape mismatch for class_embedding: file \(64,\) vs '
                       r'model \(128,\)'):
        _tower(width=128, head_width=32).load_pretrained(str(tmp_path / 'clip.pth'))

"""Merging adapters for deployment: merged models equal unmerged ones, per modality."""
import os
import runpy

import pytest
import torch

import mma
from mma.adapters import AdaptedModule, RoutedRepAdapter
from mma.llms.checkpoints import meta_params, save_meta_checkpoint
from mma.loading import load_merged_lavin
from mma.models.merge import adapter_names, merge_lavin
from mma.toy import tiny_lavin_cfg

from conftest import tiny_lavin_inputs  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _model(router: bool, placement: str):
    torch.manual_seed(0)
    cfg = tiny_lavin_cfg(vocab_size=300, router=router, placement=placement)
    cfg['vit_adapter_placement'] = placement
    model = mma.build_model(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.normal_(0, 1.0 if 'router' in name else 0.1)
    return model


def _inputs(modality: str):
    return tiny_lavin_inputs(modality)


def _logits(model, modality):
    with torch.no_grad():
        return model(_inputs(modality), mode='tensor')


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize('router,placement', [(True, 'attn'), (False, 'block'), (True, 'ffn')])
def test_merged_equals_unmerged_per_modality(router, placement):
    model = _model(router, placement)
    before = {m: _logits(model, m) for m in ('image', 'text')}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for modality in ('image', 'text'):
        merged = merge_lavin(model, modality).eval()
        assert _rel(_logits(merged, modality), before[modality]) <= 1e-5
        assert all(b.adapter_attn is None and b.adapter_ffn is None for b in merged.llm.layers)
        blk = merged.llm.layers[0]
        assert (blk.attention.wq.bias is not None) == (placement in ('attn', 'block'))
        assert (blk.feed_forward.w1.bias is not None) == (placement in ('ffn', 'block'))
        kept = adapter_names(merged)
        if router:  # routed ViT adapters route per token: they are kept, as documented
            assert kept and all('vision.tower' in n for n in kept)
            assert all(isinstance(merged.get_submodule(n), RoutedRepAdapter) for n in kept)
        else:  # every adapter is folded: a plain LLaMA + ViT
            assert kept == []
            assert not any(isinstance(m, AdaptedModule) for m in merged.modules())
        # Untouched tensors are shared, and the original is unchanged (keep-originals).
        assert merged.llm.tok_embeddings.weight is model.llm.tok_embeddings.weight
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert torch.equal(_logits(model, 'image'), before['image'])
    if router:  # routing is modality-specific: the text merge is wrong for image samples
        assert _rel(_logits(merge_lavin(model, 'text'), 'image'), before['image']) > 1e-3


def test_merge_tool_writes_loadable_safetensors(tmp_path, capsys):
    model = _model(False, 'block')
    llama_dir = str(tmp_path / 'llama')
    save_meta_checkpoint(model.llm.base_state_dict(), llama_dir, meta_params(model.llm.args))
    clip = str(tmp_path / 'clip.pth')
    torch.save({f'visual.{k}': v for k, v in model.vision.tower.state_dict().items()
                if '.adapter.' not in k}, clip)
    adapters = str(tmp_path / 'adapters.pth')
    torch.save(model.trainable_state_dict(), adapters)
    cfg = tiny_lavin_cfg(vocab_size=300, router=False, placement='block')
    cfg['vit_adapter_placement'] = 'block'
    cfg['llm']['checkpoint'] = llama_dir
    cfg['vision']['pretrained'] = clip
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(f'model = {cfg!r}\n')
    tool = runpy.run_path(os.path.join(ROOT, 'tools', 'merge_adapters.py'))
    out = str(tmp_path / 'merged')
    tool['main']([str(cfg_file), '--out', out, '--adapter-checkpoint', adapters])
    assert 'adapters kept unmerged: 0' in capsys.readouterr().out
    for modality in ('image', 'text'):
        path = os.path.join(out, f'merged_{modality}.safetensors')
        loaded = load_merged_lavin(path)
        assert not any(p.is_meta for p in loaded.parameters())
        assert adapter_names(loaded) == []
        assert _rel(_logits(loaded, modality), _logits(model, modality)) <= 1e-5

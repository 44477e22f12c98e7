"""Reference LaVIN checkpoints -> mma: conversion tool, ``adapter_checkpoint`` config field, errors.

The exporter below is written from the reference layout (the names of the original
lavin/model.py and lavin/mm_adaptation.py; docs/weights.md), not from mma's converter, so a wrong mapping in either shows up as different logits.
"""
import argparse
import os
import pickle
import runpy

import pytest
import torch
from mmengine.config import Config

import mma
from mma.llms.checkpoints import meta_params, save_meta_checkpoint
from mma.models import load_adapter_checkpoint, read_adapter_state_dict
from mma.toy import tiny_lavin_cfg

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def export_reference_checkpoint(model, path: str, ddp: bool = True) -> dict:
    """Write ``model``'s trainable tensors as the original LaVIN code saves them."""
    ref = {}

    def adapter(prefix: str, a) -> None:
        ref[f'{prefix}.conv_A.weight'] = a.down.weight[..., None]  # Conv1d [8, d, 1]
        ref[f'{prefix}.conv_A.bias'] = a.down.bias
        ups = list(a.experts) if hasattr(a, 'experts') else [a.up]
        for conv, up in zip(('conv_B', 'conv_D'), ups):
            ref[f'{prefix}.{conv}.weight'] = up.weight[..., None]  # grouped Conv1d [d, 8/g, 1]
            ref[f'{prefix}.{conv}.bias'] = up.bias
        if hasattr(a, 'router'):
            ref[f'{prefix}.expert_weights.weight'] = a.router.linear.weight
            ref[f'{prefix}.expert_weights.bias'] = a.router.linear.bias

    for i, blk in enumerate(model.llm.layers):
        for slot, ref_slot in (('adapter_attn', 'adapter_attn'), ('adapter_ffn', 'adapter_mlp')):
            if getattr(blk, slot) is not None:
                adapter(f'layers.{i}.{ref_slot}', getattr(blk, slot))
    for j, blk in enumerate(model.vision.tower.transformer.resblocks):
        for norm, ref_slot in (('ln_1', 'adapter_attn'), ('ln_2', 'adapter_mlp')):
            if hasattr(getattr(blk, norm), 'adapter'):
                adapter(f'backbone.visual.transformer.resblocks.{j}.{ref_slot}',
                        getattr(blk, norm).adapter)
    for conv, fc in (('conv_A', model.projector.fc1), ('conv_B', model.projector.fc2)):
        ref[f'adapter_proj.{conv}.weight'] = fc.weight
        ref[f'adapter_proj.{conv}.bias'] = fc.bias
    ref['adapter_modality_embedding.weight'] = model.modality_embedding.weight
    ref = {('module.' if ddp else '') + k: v.detach().clone() for k, v in ref.items()}
    torch.save({'model': ref, 'optimizer': {'state': {}, 'param_groups': []}, 'epoch': 19,
                'scaler': {'scale': 65536.0}, 'args': argparse.Namespace(adapter_dim=8, lr=9e-3)},
               path)
    return ref


def _randomize_adapters(model) -> None:
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.normal_(0, 0.5 if 'router' in name else 0.1)


def _inputs(has_image: bool):
    torch.manual_seed(7)
    return dict(input_ids=torch.randint(3, 300, (1, 11)), has_image=torch.tensor([has_image]),
                visual_pos=torch.tensor([3]), images=torch.randn(1, 3, 32, 32) if has_image else None)


def _logits(model, has_image):
    with torch.no_grad():
        return model(_inputs(has_image), mode='tensor')


def _base_files(model, tmp_path):
    """The exported model's base weights in real layouts: a Meta folder and an open_clip file."""
    llama_dir = str(tmp_path / 'llama' / '7B')
    save_meta_checkpoint(model.llm.base_state_dict(), llama_dir, meta_params(model.llm.args))
    clip = str(tmp_path / 'clip.pth')
    torch.save({f'visual.{k}': v for k, v in model.vision.tower.state_dict().items()
                if '.adapter.' not in k}, clip)
    return llama_dir, clip


@pytest.mark.parametrize('router,placement', [(True, 'attn'), (False, 'block')])
def test_converted_reference_checkpoint_reproduces_logits(tmp_path, capsys, router, placement):
    cfg = tiny_lavin_cfg(vocab_size=300, router=router, placement=placement)
    torch.manual_seed(0)
    exported = mma.build_model(cfg).eval()
    _randomize_adapters(exported)
    ref_path = str(tmp_path / 'checkpoint-19.pth')
    ref = export_reference_checkpoint(exported, ref_path)
    d = 64
    if router:  # the shapes the original code saves
        assert ref['module.layers.0.adapter_attn.conv_A.weight'].shape == (8, d, 1)
        assert ref['module.layers.1.adapter_attn.conv_D.weight'].shape == (d, 4, 1)
        assert ref['module.layers.0.adapter_attn.expert_weights.weight'].shape == (2, d)
    else:
        assert ref['module.layers.0.adapter_mlp.conv_B.weight'].shape == (d, 4, 1)
    assert ref['module.adapter_proj.conv_A.weight'].shape == (16, 64)
    assert 'module.backbone.visual.transformer.resblocks.1.adapter_attn.conv_A.bias' in ref

    out = str(tmp_path / 'adapters.safetensors')
    cfg_file = str(tmp_path / 'model_cfg.py')
    Config(dict(model=cfg)).dump(cfg_file)
    tool = runpy.run_path(os.path.join(ROOT, 'tools', 'convert_lavin_checkpoint.py'))
    tool['main']([ref_path, out, '--config', cfg_file])
    assert f'{len(ref)} tensors' in capsys.readouterr().out

    llama_dir, clip = _base_files(exported, tmp_path)
    for adapter_ckpt in (out, ref_path):  # converted file, or the reference file directly
        cfg_b = tiny_lavin_cfg(vocab_size=300, router=router, placement=placement)
        cfg_b['llm']['checkpoint'] = llama_dir
        cfg_b['vision']['pretrained'] = clip
        cfg_b['adapter_checkpoint'] = adapter_ckpt
        with torch.device('meta'):
            model = mma.build_model(cfg_b)
        model.init_weights()
        model.eval()
        assert not any(p.is_meta for p in model.parameters())
        for has_image in (True, False):
            assert torch.equal(_logits(model, has_image), _logits(exported, has_image))
    # Not vacuous: the adapters change the output.
    plain = mma.build_model(tiny_lavin_cfg(vocab_size=300, router=router, placement=placement))
    plain.load_state_dict({k: v for k, v in exported.state_dict().items() if '.adapter_' not in k},
                          strict=False)
    assert not torch.allclose(_logits(plain.eval(), True), _logits(exported, True))


def test_own_and_mmengine_checkpoints(tmp_path):
    from mmengine.logging import HistoryBuffer
    torch.manual_seed(0)
    src = mma.build_model(tiny_lavin_cfg(vocab_size=300))
    _randomize_adapters(src)
    dst = mma.build_model(tiny_lavin_cfg(vocab_size=300))
    torch.save(src.trainable_state_dict(), tmp_path / 'own.pth')
    load_adapter_checkpoint(dst, str(tmp_path / 'own.pth'))
    for k, v in src.trainable_state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    # An mmengine checkpoint not written by mma's hooks: full state dict (base weights are
    # ignored) + pickled message hub. Refused (unpickling can run code) unless allowed.
    dst = mma.build_model(tiny_lavin_cfg(vocab_size=300))
    router = dst.llm.layers[0].adapter_attn.router.linear.weight
    hub = HistoryBuffer()
    hub.update(1.0)
    path = str(tmp_path / 'epoch_1.pth')
    torch.save({'meta': {'epoch': 1}, 'state_dict': src.state_dict(),
                'message_hub': {'log': hub}}, path)
    with pytest.raises(pickle.UnpicklingError, match=r'epoch_1.pth: holds Python objects .*'
                       r'HistoryBuffer.*allow_unsafe_load=True'):
        load_adapter_checkpoint(dst, path)
    with pytest.warns(UserWarning, match='unpickling it fully, as allowed'):
        load_adapter_checkpoint(dst, path, allow_unsafe=[path])
    with pytest.raises(pickle.UnpicklingError, match='allow_unsafe_load=True'):  # per call
        load_adapter_checkpoint(dst, path, allow_unsafe=[str(tmp_path / 'other.pth')])
    # mma.load_model takes the permission from the config (as tools/test.py runs it)
    cfg = dict(model=tiny_lavin_cfg(vocab_size=300))
    with pytest.raises(pickle.UnpicklingError, match='epoch_1.pth: holds Python objects'):
        mma.load_model(cfg, path)
    with pytest.warns(UserWarning, match='unpickling it fully, as allowed'):
        loaded = mma.load_model(dict(cfg, allow_unsafe_load=[path]), path)
    for k, v in src.trainable_state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert dst.llm.layers[0].adapter_attn.router.linear.weight is router  # filled in place
    for k, v in src.trainable_state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    assert not torch.equal(dst.llm.output.weight, src.llm.output.weight)


def test_adapter_checkpoint_errors(tmp_path):
    torch.manual_seed(0)
    model = mma.build_model(tiny_lavin_cfg(vocab_size=300))
    with pytest.raises(FileNotFoundError, match='adapter checkpoint not found: .*missing.pth'):
        load_adapter_checkpoint(model, str(tmp_path / 'missing.pth'))
    ref_path = str(tmp_path / 'checkpoint-0.pth')
    ref = export_reference_checkpoint(model, ref_path, ddp=False)
    # Unknown reference keys are listed.
    bad = dict(ref, **{'layers.0.adapter_attn.conv_X.weight': torch.zeros(1),
                       'prefix_query.weight': torch.zeros(1)})
    torch.save({'model': bad}, tmp_path / 'bad.pth')
    with pytest.raises(KeyError, match=r"bad.pth: 2 keys are not part of the reference LaVIN "
                       r"checkpoint layout: \['layers.0.adapter_attn.conv_X.weight', "
                       r"'prefix_query.weight'\]"):
        read_adapter_state_dict(str(tmp_path / 'bad.pth'), model)
    with pytest.raises(ValueError, match='checkpoint-0.pth is a checkpoint of the original LaVIN '
                       'code: .* pass the model'):
        read_adapter_state_dict(ref_path)
    # A reference checkpoint of a deeper model: its extra blocks have no slot here.
    torch.save({'model': dict(ref, **{'layers.5.adapter_attn.conv_A.bias': torch.zeros(8)})},
               tmp_path / 'deep.pth')
    with pytest.raises(KeyError, match=r"deep.pth: 1 keys of the reference LaVIN checkpoint are "
                       r"for blocks the model has no adapter slot in .*'layers.5.adapter_attn"):
        load_adapter_checkpoint(model, str(tmp_path / 'deep.pth'))
    # Unknown mma keys are listed (a 4-layer adapter checkpoint into a 2-layer model).
    own = dict(model.trainable_state_dict())
    own['llm.layers.3.adapter_attn.down.weight'] = torch.zeros(8, 64)
    with pytest.raises(KeyError, match=r"1 unexpected keys that are no trainable tensor of the "
                       r"model .*\['llm.layers.3.adapter_attn.down.weight'\]"):
        load_adapter_checkpoint(model, own)
    # A text-only model cannot take ViT adapters.
    cfg = tiny_lavin_cfg(vocab_size=300, vit_adapters=False)
    with pytest.raises(KeyError, match=r"unexpected keys .*resblocks.0.ln_1"):
        load_adapter_checkpoint(mma.build_model(cfg), ref_path)
    # Missing adapter tensors and shape mismatches.
    own = dict(model.trainable_state_dict())
    del own['modality_embedding.weight']
    with pytest.raises(KeyError, match=r"1 missing adapter tensors of the model: "
                       r"\['modality_embedding.weight'\]"):
        load_adapter_checkpoint(model, own)
    own = dict(model.trainable_state_dict(), **{'projector.fc1.weight': torch.zeros(128, 64)})
    with pytest.raises(ValueError, match=r'shape mismatch for projector.fc1.weight: checkpoint '
                       r'\(128, 64\) vs model \(16, 64\)'):
        load_adapter_checkpoint(model, own)


def test_real_weights_configs():
    from mmengine.config import Config
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'lavin_7b_sqa_real_weights.py'))
    assert cfg.model.llm.checkpoint == 'data/weights/llama/7B'
    assert cfg.model.vision.pretrained == 'data/weights/clip/ViT-L-14.pt'
    assert cfg.model.adapter_checkpoint is None
    with torch.device('meta'):
        model = mma.build_model(cfg)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 3781296
    with pytest.raises(FileNotFoundError, match='LLaMA checkpoint folder not found: '
                       'data/weights/llama/7B'):
        model.init_weights()
    lite = Config.fromfile(os.path.join(ROOT, 'configs', 'lavin_7b_sqa_lite.py'))
    assert lite.model.llm.quantization == 'nf4'
    assert lite.optim_wrapper.optimizer.type == 'PagedAdamW32bit'
    if not torch.cuda.is_available():
        with torch.device('meta'), pytest.raises(RuntimeError, match='needs a CUDA GPU'):
            mma.build_model(lite)


def test_adapter_checkpoint_permission_reaches_training_and_check(tmp_path):
    """``model.adapter_checkpoint`` loads in ``LaVIN.init_weights`` (the Runner's training start,
    ``tools/train.py --check``) with the config's ``allow_unsafe_load``, not with a process-wide
    setting: refused without it, loaded with it."""
    from mmengine.logging import HistoryBuffer
    from mma.engine import MMARunner
    from mma.engine.preflight import preflight
    torch.manual_seed(0)
    src = mma.build_model(tiny_lavin_cfg(vocab_size=300))
    _randomize_adapters(src)
    hub = HistoryBuffer()
    hub.update(1.0)
    path = str(tmp_path / 'epoch_1.pth')  # an mmengine checkpoint not written by mma's hooks
    torch.save({'meta': {'epoch': 1}, 'state_dict': src.state_dict(),
                'message_hub': {'log': hub}}, path)

    def config(allow):
        cfg = Config(dict(model=dict(tiny_lavin_cfg(vocab_size=300), adapter_checkpoint=path),
                          work_dir=str(tmp_path / 'work'), default_scope='mma'))
        if allow is not None:
            cfg.allow_unsafe_load = allow
        return cfg

    def trained_start(allow):  # what runner.train() does first
        runner = MMARunner.from_cfg(config(allow))
        runner.model.init_weights()
        return runner.model

    with pytest.raises(pickle.UnpicklingError, match='epoch_1.pth: holds Python objects'):
        trained_start(None)
    with pytest.warns(UserWarning, match='unpickling it fully, as allowed'):
        model = trained_start([path])
    for k, v in src.trainable_state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    with pytest.raises(pickle.UnpicklingError):  # the permission names files
        trained_start([str(tmp_path / 'other.pth')])

    ok, lines = preflight(config(None))
    assert not ok and any('epoch_1.pth: holds Python objects' in line for line in lines)
    with pytest.warns(UserWarning, match='unpickling it fully, as allowed'):
        ok, lines = preflight(config(True))
    assert ok, lines

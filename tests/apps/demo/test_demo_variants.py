"""The demo with the new backbones: a Qwen2.5-style LLM (GQA, q/k/v biases, untied embeddings,
rope_theta 1e6) with an HF tokenizer.json, and patch tokens through LLaVA-1.5's MLP projector.
Each must learn image questions far above the text-only preset, as the LaVIN preset does."""
import os
import shutil

import pytest

from mma.apps.demo.run import run_demo

TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'configs',
                    'ablations', 'tiny')


@pytest.mark.slow
@pytest.mark.parametrize('name', ['lavin_tiny_demo_qwen2.5.py', 'lavin_tiny_demo_patch-mlp.py'])
def test_demo_variant_beats_text_only(tmp_path, name, quick_demo):
    # the patch-MLP variant has the demo's backbones, so the quick demo's assets; its text-only
    # preset (no ViT, hence no projector) is the quick demo's text-only model, already trained
    shares_assets = 'patch-mlp' in name
    if shares_assets:
        shutil.copytree(quick_demo['work_dir'] / 'assets', tmp_path / 'assets')
    logs = []
    out = run_demo(str(tmp_path), os.path.join(TINY, name), setting='quick', log=logs.append,
                   compare_text_only=not shares_assets,
                   cfg_options={'train_cfg.max_epochs': quick_demo['epochs']})
    chance, lavin = out['chance'], out['lavin']
    text_only = quick_demo['text_only'] if shares_assets else out['text_only']
    assert (f'assets: cached in {tmp_path / "assets"}' in logs) == shares_assets, logs[:3]
    assert lavin['count'] == 96 and lavin['unparseable'] <= 5
    assert lavin['IMG'] >= text_only['IMG'] + 30, (lavin, text_only)
    assert lavin['TXT'] >= chance['TXT'] + 50, (lavin, chance)
    if 'qwen' in name:  # the backbone really is the Qwen2.5-style one, from its own folder
        assert os.path.isfile(tmp_path / 'assets' / 'llama' / 'tokenizer.json')
        assert not os.path.exists(tmp_path / 'assets' / 'llama' / 'tokenizer.model')
